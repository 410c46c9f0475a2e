"""The Qt binding the app runs on keeps what it is given: a faulty release must fail here, not crash a user's session."""

import sys

import pytest
from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    sig_value = Signal(object)
    sig_flag = Signal(bool)


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None and True are immortal from Python 3.12 on")
def test_emitting_signals_keeps_the_reference_counts_of_what_they_carry(qapp):
    # PySide6 6.12.0 dropped one reference per emit: after some thousand signals Python aborted (bool_dealloc).
    emitter, received = _Emitter(), []
    emitter.sig_value.connect(received.append)
    emitter.sig_flag.connect(received.append)
    before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(100):
        emitter.sig_value.emit(None)
        emitter.sig_flag.emit(True)
    received.clear()
    assert (sys.getrefcount(None), sys.getrefcount(True)) == before
