"""Every edgeser error is one line, whatever a user typed into a file name or a key."""

import pytest

from edgeser.errors import DriftError, InputError, OutputError, VerifyError, one_line


@pytest.mark.parametrize("cls,code", [(InputError, 2), (DriftError, 3), (OutputError, 5), (VerifyError, 6)])
def test_messages_are_one_line_and_carry_their_code(cls, code):
    err = cls("unknown key 'a\nb'\tin\rhere\x1b[31m", path="take\n2.wav")
    assert "\n" not in err.message and "\r" not in err.message and "\x1b" not in err.message
    assert err.message == "take\\n2.wav: unknown key 'a\\nb'\\tin\\rhere\\x1b[31m"
    assert err.exit_code == code and str(err) == err.message


def test_printable_text_is_unchanged():
    text = "données/été.wav: audio is silent (peak below -100 dBFS) — ok"
    assert one_line(text) == text
