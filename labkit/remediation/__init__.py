"""The remediation Lambda handlers, deployed as real Lambda code.

Each handler is one module of this package that imports only boto3 and the
standard library, so it runs unchanged in AWS Lambda and in the local cloud.
It is packaged alone, at the root of a zip, and the template names it as
``<module>.handler``:

- ``isolate_instance``: moves an instance into the forensic security group.
- ``revoke_sessions``: denies a role every session issued before now.

This package's own code (packaging helpers) is for labkit, not for Lambda.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from labkit.errors import ConfigError

#: Template parameter holding each module's S3 key, by parameter name.
CODE_KEY_PARAMETERS: dict[str, str] = {
    "IsolateCodeKey": "isolate_instance",
    "RevokeCodeKey": "revoke_sessions",
}

# A fixed timestamp makes the zip, and so the function's CodeSha256, the same
# on every build of the same source.
_ZIP_TIME = (2024, 1, 1, 0, 0, 0)


def source_path(module: str) -> Path:
    """Return the path of a handler module's source file.

    Args:
        module: a handler module name, such as ``"isolate_instance"``.

    Returns:
        The ``.py`` file in this package.

    Raises:
        ConfigError: the name is not one of the handler modules.
    """
    allowed = sorted(CODE_KEY_PARAMETERS.values())
    if module not in allowed:
        raise ConfigError(
            f"Unknown remediation module {module!r}; expected one of {allowed}. "
            "Use the module name from the template's Handler, without '.handler'."
        )
    return Path(__file__).with_name(f"{module}.py")


def build_zip(module: str) -> bytes:
    """Return the deployment zip of one handler module.

    Args:
        module: a handler module name, such as ``"revoke_sessions"``.

    Returns:
        The bytes of a zip holding ``<module>.py`` at its root, identical for
        identical source.
    """
    return zip_source(source_path(module))


def zip_source(path: Path) -> bytes:
    """Zip one source file at the archive root, with byte-identical output.

    The entry's time is fixed, so the same code always gives the same bytes
    (and the same CodeSha256), whatever the file's modification time.
    """
    info = zipfile.ZipInfo(path.name, date_time=_ZIP_TIME)
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(info, path.read_bytes())
    return buffer.getvalue()
