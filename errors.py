"""Exceptions raised at acom's boundaries. Each message names the input and what was allowed."""


class AcomError(Exception):
    """Base of every error acom raises on bad input; the CLI turns it into exit code 2."""


class DataError(AcomError):
    """A data set, audio file, transcript or label file is missing, corrupt or malformed."""


class ToolError(AcomError):
    """An external program (a TTS engine, sox, a codec tool) is missing or failed."""


class ExportError(AcomError):
    """An export cannot be made or verified: unknown board, model too large, unsupported operator, failed check."""
