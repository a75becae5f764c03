"""Synthesise unlabelled speech with espeak-ng for distillation: many languages, voices, pitches and rates.

The default student is distilled on EmoDB plus this speech, so it meets more voices, languages and
speaking styles than EmoDB's ten German actors. The audio carries no emotion labels: the teacher
labels it (``edgeser label``) like any other audio.

Needs the espeak-ng program (``apt-get install -y espeak-ng``). Writes 16 kHz mono FLAC files and a
``list.csv`` (file, speaker) to ``--out`` (generated audio is never committed; ``scratch/`` is
git-ignored). Each "speaker" is one language and voice variant.

Usage::

    python tools/make_tts_speech.py --out scratch/tts --renditions 15 --seed 0
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from edgeser.audio import load

SENTENCES: dict[str, tuple[str, ...]] = {
    "en": (
        "The train leaves at seven tomorrow morning.",
        "I put the keys on the kitchen table.",
        "We have to finish this before the weekend!",
        "Did you really read the whole book?",
        "Nobody told me the meeting was cancelled.",
        "The weather is getting colder every day.",
        "Please close the window when you leave.",
        "They painted the house blue last summer.",
    ),
    "de": (
        "Der Zug fährt morgen früh um sieben ab.",
        "Ich habe die Schlüssel auf den Tisch gelegt.",
        "Wir müssen das vor dem Wochenende fertig machen!",
        "Hast du wirklich das ganze Buch gelesen?",
        "Niemand hat mir gesagt, dass die Sitzung ausfällt.",
        "Das Wetter wird jeden Tag kälter.",
        "Bitte mach das Fenster zu, wenn du gehst.",
        "Sie haben das Haus letzten Sommer blau gestrichen.",
    ),
    "fr": (
        "Le train part demain matin à sept heures.",
        "J'ai posé les clés sur la table de la cuisine.",
        "Nous devons finir cela avant le week-end !",
        "Tu as vraiment lu tout le livre ?",
        "Personne ne m'a dit que la réunion était annulée.",
        "Il fait de plus en plus froid chaque jour.",
        "Ferme la fenêtre quand tu pars, s'il te plaît.",
        "Ils ont peint la maison en bleu l'été dernier.",
    ),
    "es": (
        "El tren sale mañana a las siete.",
        "Dejé las llaves en la mesa de la cocina.",
        "¡Tenemos que terminar esto antes del fin de semana!",
        "¿De verdad leíste todo el libro?",
        "Nadie me dijo que la reunión se había cancelado.",
        "El tiempo está cada día más frío.",
        "Cierra la ventana cuando salgas, por favor.",
        "Pintaron la casa de azul el verano pasado.",
    ),
    "it": (
        "Il treno parte domani mattina alle sette.",
        "Ho lasciato le chiavi sul tavolo della cucina.",
        "Dobbiamo finire prima del fine settimana!",
        "Hai davvero letto tutto il libro?",
        "Nessuno mi ha detto che la riunione era annullata.",
        "Il tempo diventa ogni giorno più freddo.",
        "Chiudi la finestra quando esci, per favore.",
        "Hanno dipinto la casa di blu l'estate scorsa.",
    ),
    "nl": (
        "De trein vertrekt morgenochtend om zeven uur.",
        "Ik heb de sleutels op de keukentafel gelegd.",
        "We moeten dit voor het weekend afmaken!",
        "Heb je echt het hele boek gelezen?",
        "Niemand vertelde me dat de vergadering niet doorging.",
        "Het weer wordt elke dag kouder.",
        "Doe het raam dicht als je weggaat.",
        "Ze hebben het huis vorige zomer blauw geverfd.",
    ),
    "pt": (
        "O comboio parte amanhã às sete da manhã.",
        "Deixei as chaves na mesa da cozinha.",
        "Temos de acabar isto antes do fim de semana!",
        "Leste mesmo o livro todo?",
        "Ninguém me disse que a reunião foi cancelada.",
        "O tempo está cada dia mais frio.",
        "Fecha a janela quando saíres, por favor.",
        "Pintaram a casa de azul no verão passado.",
    ),
    "pl": (
        "Pociąg odjeżdża jutro o siódmej rano.",
        "Położyłem klucze na stole w kuchni.",
        "Musimy to skończyć przed weekendem!",
        "Naprawdę przeczytałeś całą książkę?",
        "Nikt mi nie powiedział, że spotkanie odwołano.",
        "Pogoda z każdym dniem jest zimniejsza.",
        "Zamknij okno, kiedy wychodzisz.",
        "Zeszłego lata pomalowali dom na niebiesko.",
    ),
    "sv": (
        "Tåget går klockan sju i morgon bitti.",
        "Jag lade nycklarna på köksbordet.",
        "Vi måste bli klara före helgen!",
        "Har du verkligen läst hela boken?",
        "Ingen sa till mig att mötet var inställt.",
        "Vädret blir kallare för varje dag.",
        "Stäng fönstret när du går.",
        "De målade huset blått förra sommaren.",
    ),
    "tr": (
        "Tren yarın sabah yedide kalkıyor.",
        "Anahtarları mutfak masasına koydum.",
        "Bunu hafta sonundan önce bitirmeliyiz!",
        "Gerçekten bütün kitabı okudun mu?",
        "Kimse bana toplantının iptal edildiğini söylemedi.",
        "Hava her gün daha da soğuyor.",
        "Çıkarken pencereyi kapat lütfen.",
        "Geçen yaz evi maviye boyadılar.",
    ),
}
VARIANTS = (
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
    "croak",
    "klatt",
    "klatt2",
    "klatt4",
    "whisperf",
    "grandma",
    "grandpa",
    "steph",
    "aunty",
    "iven",
    "max",
    "paul",
)
RATE_WPM = (90, 240)
PITCH = (5, 95)
SAMPLING_RATE = 16_000


def synthesise(text: str, voice: str, rate: int, pitch: int, gap: int, wav: Path) -> np.ndarray:
    """Run espeak-ng once and return 16 kHz float32 audio."""
    cmd = ["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(pitch), "-g", str(gap), "-w", str(wav), text]
    subprocess.run(cmd, check=True, capture_output=True)
    return load(wav)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="output folder, not committed (scratch/ is git-ignored)")
    p.add_argument(
        "--renditions", type=int, default=15, help="random voice/rate/pitch renditions per sentence"
    )
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng not found: apt-get install -y espeak-ng")
    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = ["file,speaker"]
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "x.wav"
        for lang, sentences in SENTENCES.items():
            for s, text in enumerate(sentences):
                for r in range(args.renditions):
                    variant = str(rng.choice(VARIANTS))
                    rate, pitch = int(rng.integers(*RATE_WPM)), int(rng.integers(*PITCH))
                    x = synthesise(text, f"{lang}+{variant}", rate, pitch, int(rng.integers(0, 6)), wav)
                    name = f"{lang}/{lang}_{s:02d}_{r:02d}_{variant}_{rate}_{pitch}.flac"
                    (args.out / lang).mkdir(exist_ok=True)
                    sf.write(args.out / name, x, SAMPLING_RATE, subtype="PCM_16")
                    rows.append(f"{name},tts-{lang}-{variant}")
            print(f"{lang}: {len(sentences) * args.renditions} clips", flush=True)
    (args.out / "list.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    print(f"wrote {len(rows) - 1} clips and list.csv to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
