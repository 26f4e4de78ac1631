"""A Lambda function as the local cloud runs it: its configuration and code.

moto's Lambda backend stores each function; this module reads one version of
it into a :class:`FunctionSpec`, refuses what the local cloud cannot run, and
unpacks the code zip into the folder a worker runs it from.
"""

from __future__ import annotations

import hashlib
import io
import logging
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from moto.awslambda.exceptions import LambdaClientError
from moto.awslambda.utils import get_backend as lambda_backend

from labkit.local import settings
from labkit.local.registry import ServiceError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FunctionSpec:
    """What the runtime needs to know about one function version."""

    name: str
    arn: str
    handler: str
    runtime: str
    role_arn: str
    environment: dict[str, str]
    code_zip: bytes
    code_sha256: str
    timeout: float
    memory_mb: int
    region: str
    account_id: str
    version: str = "$LATEST"


def function_spec(
    account_id: str, region: str, name_or_arn: str, qualifier: str | None = None
) -> FunctionSpec:
    """Read a function's configuration and code from moto's Lambda backend.

    Args:
        account_id: the function's account.
        region: the function's region.
        name_or_arn: function name, full or partial ARN, optionally
            ``name:qualifier``.
        qualifier: a version or alias; ``$LATEST`` when omitted.

    Raises:
        ServiceError: ``ResourceNotFoundException`` if there is no such function.
    """
    name, arn_qualifier = _split_function_name(name_or_arn)
    # moto keeps functions in a second backend when its Docker use is off, as
    # the local cloud sets it; this picks the one its own responses use.
    backend = lambda_backend(account_id, region)
    try:
        fn = backend.get_function(name, qualifier or arn_qualifier)
    except LambdaClientError as error:
        raise ServiceError(error.error_type, error.message, error.code) from None
    return FunctionSpec(
        name=fn.function_name,
        arn=f"{fn.function_arn.split(':function:')[0]}:function:{fn.function_name}",
        handler=fn.handler or "",
        runtime=fn.run_time or "",
        role_arn=fn.role,
        environment={str(k): str(v) for k, v in fn.environment_vars.items()},
        code_zip=getattr(fn, "code_bytes", b""),
        code_sha256=fn.code_sha_256,
        timeout=float(fn.timeout),
        memory_mb=int(fn.memory_size),
        region=region,
        account_id=account_id,
        version=str(fn.version),
    )


def _split_function_name(value: str) -> tuple[str, str | None]:
    """Split a name, ``name:qualifier`` or (partial) ARN into name and qualifier."""
    parts = value.split(":")
    if "function" in parts:
        parts = parts[parts.index("function") + 1 :]
    return parts[0], (parts[1] if len(parts) > 1 else None)


def invoked_arn(spec: FunctionSpec) -> str:
    """Return the ARN a handler's context reports: qualified unless ``$LATEST``."""
    return spec.arn if spec.version == "$LATEST" else f"{spec.arn}:{spec.version}"


def check_runnable(spec: FunctionSpec) -> None:
    """Refuse a function the local cloud cannot run.

    Raises:
        ServiceError: ``InvalidRuntimeException`` for a runtime other than
            ``python3.x``; container-image and other runtimes are not supported.
    """
    if not spec.runtime.startswith("python3"):
        message = (
            f"the local cloud runs python3.x zip functions only, not "
            f"{spec.runtime or 'a container image'!r}; deploy it to AWS instead"
        )
        raise ServiceError("InvalidRuntimeException", message, 502)


def unpack_code(spec: FunctionSpec) -> Path:
    """Unpack the function's zip once per code hash; return the folder.

    Raises:
        ServiceError: ``InvalidZipFileException`` if the code is not a zip.
    """
    digest = hashlib.sha256(spec.code_zip).hexdigest()
    root = settings.lab_home() / "lambda" / "code"
    target = root / digest
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=root))
    try:
        with zipfile.ZipFile(io.BytesIO(spec.code_zip)) as archive:
            archive.extractall(staging)
    except zipfile.BadZipFile:
        shutil.rmtree(staging)
        message = f"Lambda was unable to unzip the code of {spec.name!r}"
        raise ServiceError("InvalidZipFileException", message, 502) from None
    try:
        staging.rename(target)
    except OSError:
        # Another thread unpacked the same code first; theirs is identical.
        shutil.rmtree(staging)
    return target
