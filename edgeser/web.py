"""``edgeser live --web``: the live session shown on a page in the browser instead of the terminal.

The server is the device's own (:class:`edgeser.runtime.web.Dashboard`); this module chooses its audio
(``--input FILE`` or ``--device``: this computer's audio, streamed to every page; neither: each page's
own microphone), opens the page in the default browser when there is a display, and maps failures to
edgeser errors.
"""

from __future__ import annotations

import os
import sys
import webbrowser
from collections.abc import Callable

from .errors import InputError
from .live import LiveSession
from .runtime.listen import Summary

__all__ = ["run_web", "open_browser"]


def open_browser(url: str) -> bool:
    """Open ``url`` in the default browser when this machine has a display; True when one was asked to.

    Without a display (a server, an SSH session, CI) nothing is started: a console browser would take
    over the terminal that shows the URL.
    """
    graphical = sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or
                                                             os.environ.get("WAYLAND_DISPLAY"))
    if not graphical:
        return False
    try:
        return webbrowser.open(url, new=2)
    except webbrowser.Error:
        return False


def run_web(session: LiveSession, *, host: str, port: int, browser: bool = True,
            notify: Callable[[str], None] | None = None) -> Summary | None:
    """Serve the dashboard for a live session until Ctrl-C or SIGTERM (or a failing input device).

    Args:
        session: the opened model, the file (if any) and the stream settings (:func:`edgeser.live.open_session`).
        host: interface to bind; anything but 127.0.0.1, localhost or ::1 gets a random token in the URL.
        port: TCP port (0: any free one).
        browser: open the page in the default browser (when there is a display).
        notify: called with each line for the user (the URL); default: stderr.

    Returns:
        The source's summary when the audio is this computer's (a file or a device), else None.

    Raises:
        InputError: a setting that does not apply to the page's microphone, an address that cannot be
            bound, a missing input device, or aiohttp (or sounddevice) not installed.
    """
    from .runtime.mic import NoDeviceError
    from .runtime.web import Dashboard
    from .runtime.webparts import WebConfig

    options = session.options
    mic = session.source is None and options.device is not None
    if session.source is None and not mic:
        for flag, value in (("--log", options.log_path), ("--duration-s", options.duration_s)):
            if value is not None:
                raise InputError(f"{flag} with --web needs --input FILE or --device (the page's microphone is "
                                 "logged by the page: Download CSV)")
    try:
        dash = Dashboard(session.runner, config=options.config, web=WebConfig(host=host, port=port),
                         source=session.source, mic=mic, device=options.device, autostart=session.source is None,
                         model_name=options.model_name, log_path=options.log_path)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    say = notify or (lambda line: print(line, file=sys.stderr))

    def started(url: str) -> None:
        if dash.token is not None:
            say(f"serving on {host}: pages need the token in this URL; anyone with it can watch")
        if browser and not open_browser(url):
            say("open the address above in a browser")

    try:
        return dash.serve(say=say, on_start=started)
    except NoDeviceError as exc:
        raise InputError(str(exc)) from None
    except ImportError as exc:
        raise InputError(str(exc)) from None
    except OSError as exc:
        raise InputError(f"{exc}; choose another --port") from None
