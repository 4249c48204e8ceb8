"""Exceptions raised at acom's boundaries. Each message names the input and what was allowed."""


class AcomError(Exception):
    """Base of every error acom raises on bad input; the CLI turns it into exit code 2."""


class DataError(AcomError):
    """A data set, audio file, transcript or label file is missing, corrupt or malformed."""


class ToolError(AcomError):
    """An external program (a TTS engine, sox, a codec tool) is missing or failed."""


class ExportError(AcomError):
    """An export cannot be made or verified: unknown board, model too large, unsupported operator, failed check."""


class WireError(AcomError):
    """Bytes that are not a valid acom packet or frame; ``reason`` is a short word for counters."""

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason
