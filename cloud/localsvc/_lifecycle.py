"""The lifecycle both private services share: stop, restart, context manager, at-exit."""

from __future__ import annotations

import atexit
import logging
import tempfile
import types
from typing import Self

log = logging.getLogger(__name__)


class PrivateService:
    """Base of the launchers. Subclasses implement :meth:`start` and :meth:`_shutdown`.

    ``_tmp`` is the temporary directory the service created (None when the
    caller gave one); :meth:`stop` removes it, after which the service cannot
    start again.
    """

    _tmp: tempfile.TemporaryDirectory[str] | None
    _closed: bool
    name = "service"

    def start(self) -> None:
        raise NotImplementedError

    def _shutdown(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """Shut down, then remove the temporary directory if we created it."""
        try:
            self._shutdown()
        finally:
            atexit.unregister(self._at_exit)
            if self._tmp is not None and not self._closed:
                self._tmp.cleanup()
                self._closed = True

    def restart(self) -> None:
        """Shut down if running, then start again with the same ports, config and data."""
        self._shutdown()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.stop()

    def _arm_at_exit(self) -> None:
        """Stop the service when the interpreter exits, if nobody else did."""
        atexit.unregister(self._at_exit)
        atexit.register(self._at_exit)

    def _at_exit(self) -> None:
        try:
            self.stop()
        except Exception:
            log.exception("could not stop %s at exit", self.name)
