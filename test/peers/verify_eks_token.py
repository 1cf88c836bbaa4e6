"""Verifies an EKS bearer token the way aws-iam-authenticator does, with botocore (the AWS CLI's
signer) recomputing the SigV4 query signature. moto cannot check presigned URLs itself: its IAM
enforcement reads only the Authorization header.

usage: verify_eks_token.py TOKEN CLUSTER SECRET_ACCESS_KEY   -> prints {"valid": bool, "reason": str}
"""
import base64
import datetime
import json
import sys
from urllib.parse import parse_qsl, urlsplit

import botocore.auth
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ALLOWED = {"Action", "Version", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
           "X-Amz-Security-Token", "X-Amz-Signature", "X-Amz-SignedHeaders"}


def verify(token: str, cluster: str, secret: str) -> str:
    if len(token) > 4096 or not token.startswith("k8s-aws-v1."):
        return "wrong prefix or too long"
    raw = token[len("k8s-aws-v1."):]
    url = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    parts = urlsplit(url)
    if parts.path != "/":
        return "path is not /"
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)) or not set(keys) <= ALLOWED:
        return f"unknown or repeated query parameters: {keys}"
    q = dict(pairs)
    if q.get("Action") != "GetCallerIdentity":
        return "action is not GetCallerIdentity"
    signed = q.get("X-Amz-SignedHeaders", "").split(";")
    if "x-k8s-aws-id" not in signed:
        return "x-k8s-aws-id is not signed"
    if not 0 <= int(q.get("X-Amz-Expires", "-1")) <= 900:
        return "X-Amz-Expires out of range"
    date = datetime.datetime.strptime(q["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    if datetime.datetime.now(datetime.timezone.utc) - date > datetime.timedelta(minutes=15):
        return "expired"
    access_key, day, region, service, _ = q["X-Amz-Credential"].split("/")
    # Re-sign the same request with botocore at the token's own timestamp and compare.
    botocore.auth.get_current_datetime = lambda: date
    req = AWSRequest(method="GET", url=f"{parts.scheme}://{parts.netloc}/",
                     params={"Action": q["Action"], "Version": q["Version"]},
                     headers={"x-k8s-aws-id": cluster})
    creds = Credentials(access_key, secret, q.get("X-Amz-Security-Token"))
    SigV4QueryAuth(creds, service, region, expires=int(q["X-Amz-Expires"])).add_auth(req)
    expected = dict(parse_qsl(urlsplit(req.prepare().url).query))
    if expected["X-Amz-SignedHeaders"] != q["X-Amz-SignedHeaders"]:
        return f"signed headers differ: {q['X-Amz-SignedHeaders']} vs botocore {expected['X-Amz-SignedHeaders']}"
    if expected["X-Amz-Signature"] != q["X-Amz-Signature"]:
        return "signature does not match"
    return ""


if __name__ == "__main__":
    reason = verify(*sys.argv[1:4])
    print(json.dumps({"valid": reason == "", "reason": reason}))
