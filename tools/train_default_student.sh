#!/usr/bin/env bash
# Reproduce edgeser/assets/wav2small.default.safetensors with the very commands users run
# (`edgeser label`, `edgeser distill`); see docs/model-cards/wav2small-default.md.
#
#   EMODB=../shared/data/emodb WORK=scratch/student bash tools/train_default_student.sh
#
# Needs espeak-ng (apt-get install -y espeak-ng) and the reference teacher in edgeser/assets.
# Generated audio goes to $WORK (default scratch/student, which git ignores). EmoDB speakers 11 and 14
# (the built-in calibration set) are left out of everything; speakers 12 and 09 are the validation speakers.
# About 10 minutes of audio and labels, then about 30 minutes of training on the 2-core development VM.
set -euo pipefail

EMODB=${EMODB:-../shared/data/emodb}
WORK=${WORK:-scratch/student}
EPOCHS=${EPOCHS:-64}
WINDOWS_PER_EPOCH=${WINDOWS_PER_EPOCH:-1500}
LR=${LR:-3e-3}
CHANNELS=${CHANNELS:-13}

# Unlabelled audio: EmoDB (minus the calibration speakers) clean and in 3 + 6 + 8 augmented copies, and
# espeak-ng speech in 10 languages (15 + 15 + 20 random voice/rate/pitch renditions per sentence).
python tools/make_augmented_copies.py --list "$EMODB/labels.csv" --exclude-speakers 11 14 --copies 3 \
    --out "$WORK/emodb_aug" --seed 0
python tools/make_tts_speech.py --out "$WORK/tts" --renditions 15 --seed 0
python tools/make_augmented_copies.py --list "$EMODB/labels.csv" --exclude-speakers 11 14 --copies 6 \
    --out "$WORK/emodb_aug2" --seed 1
python tools/make_tts_speech.py --out "$WORK/tts2" --renditions 15 --seed 1
python tools/make_augmented_copies.py --list "$EMODB/labels.csv" --exclude-speakers 11 14 --copies 8 \
    --out "$WORK/emodb_aug3" --seed 2
python tools/make_tts_speech.py --out "$WORK/tts3" --renditions 20 --seed 2

edgeser label "$WORK/emodb_aug/clean.csv" "$WORK/emodb_aug/list.csv" "$WORK/tts/list.csv" \
    "$WORK/emodb_aug2/list.csv" "$WORK/tts2/list.csv" "$WORK/emodb_aug3/list.csv" "$WORK/tts3/list.csv" \
    --teacher default --out "$WORK/labels_huge.csv" --workers 1 --threads 1

# Wav2Small with a 512-sample STFT (hop 256): harmonics are resolved, and 8x fewer frames than n_fft 64.
# Its head is a softmax over 8 learnt A/D/V rows (head_hidden 8, head_softmax 1), the teacher's own form,
# and reads the mean and deviation over speech frames of the log-mel's spectral shape (shape_stats 1).
# --teacher default labels every augmented window again (noise, speed, mixup), --ema averages the weights.
# Seed 0 is the shipped run (KS0); seed 1 (KS1) scored lower on the validation speakers (the model card).
edgeser distill --labels "$WORK/labels_huge.csv" --student wav2small --student-config channels="$CHANNELS" \
    --student-config n_fft=512 --student-config hop_length=256 \
    --student-config head_hidden=8 --student-config head_softmax=1 --student-config shape_stats=1 \
    --out "$WORK/wav2small.safetensors" \
    --val-speakers 12 --val-speakers 09 --epochs "$EPOCHS" --windows-per-epoch "$WINDOWS_PER_EPOCH" \
    --batch-size 16 --lr "$LR" --loss ccc+mse --ema 0.998 --teacher default \
    --noise-prob 0.6 --min-snr-db 5 --speed-prob 0.5 --mix-prob 0.5 --threads 1 --seed 0 --overwrite

cp "$WORK/wav2small.safetensors" edgeser/assets/wav2small.default.safetensors

# The model card's evaluation on the held-out calibration speakers (11, 14): CCC against the category
# targets, then against the teacher, pooled and per speaker.
edgeser evaluate --model edgeser/assets/wav2small.default.safetensors \
    --audio edgeser/assets/calibration/calibration.csv --report "$WORK/evaluation" --overwrite
