"""GetFunction with a download link that works on the local cloud.

In AWS, GetFunction's ``Code.Location`` is a presigned S3 URL of the
function's deployment package, valid for ten minutes: the console and
notebooks use it to show the code a function really runs. moto answers with
a made-up AWS host. Here the link is a presigned URL of the package's object
in the local cloud's own S3, so the same download works. A function whose
code was uploaded inline (``ZipFile``) has no such object; its link is left
as moto gives it and cannot be downloaded locally.
"""

from __future__ import annotations

import logging
from typing import Any

from moto.awslambda.exceptions import LambdaClientError
from moto.awslambda.utils import get_backend as lambda_backend

from labkit.local import internal
from labkit.local.registry import Call, ServiceError, operation

logger = logging.getLogger(__name__)

LINK_SECONDS = 600


@operation("lambda", "GetFunction")
def get_function(call: Call) -> dict[str, Any]:
    """Describe a function, its configuration and a link to its code."""
    backend = lambda_backend(call.account_id, call.region)
    try:
        function = backend.get_function(
            call.params["FunctionName"], call.params.get("Qualifier")
        )
    except LambdaClientError as error:
        raise ServiceError(error.error_type, error.message, error.code) from None
    answer: dict[str, Any] = dict(function.get_code())
    code = function.code
    if "S3Bucket" in code and "S3Key" in code:
        s3 = internal.client("s3", call.region)
        answer["Code"] = {
            "RepositoryType": "S3",
            "Location": s3.generate_presigned_url(
                "get_object",
                Params={"Bucket": code["S3Bucket"], "Key": code["S3Key"]},
                ExpiresIn=LINK_SECONDS,
            ),
        }
    return answer
