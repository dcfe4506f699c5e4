#!/usr/bin/env python3
"""moto's server with IAM enforced, one IAM user per function holding exactly its template policy.

Usage: `python3 tests/support/moto_iam.py <policies.json> <bucket>` where the JSON is what
`scripts/template.py policies` prints. Starts moto on a free loopback port, creates the bucket and,
per function, a user with the function's policy documents and an access key, then turns IAM
enforcement on (no unauthenticated actions left) and checks that an
unknown key is refused. Prints one JSON line {"endpoint", "keys": {function: [id, secret]}} and
serves until stdin closes. Needs `moto[server]` and boto3 (pip).
"""
import json
import sys

import boto3
from botocore.exceptions import ClientError
from moto import settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.server import ThreadedMotoServer

REGION = "us-east-1"


def client(service, endpoint, key=("setup", "setup")):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=key[0],
        aws_secret_access_key=key[1],
    )


def main():
    policies = json.load(open(sys.argv[1]))
    bucket = sys.argv[2]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"

    client("s3", endpoint).create_bucket(Bucket=bucket)
    iam = client("iam", endpoint)
    keys = {}
    for function, policy in policies.items():
        iam.create_user(UserName=function)
        for i, document in enumerate(policy["documents"]):
            # AWS reads a document without a version as 2008-10-17; moto refuses it.
            document.setdefault("Version", "2012-10-17")
            iam.put_user_policy(
                UserName=function, PolicyName=f"p{i}", PolicyDocument=json.dumps(document)
            )
        key = iam.create_access_key(UserName=function)["AccessKey"]
        keys[function] = [key["AccessKeyId"], key["SecretAccessKey"]]

    # The server runs in this process: what moto's reset-auth endpoint does, done directly.
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    ActionAuthenticatorMixin.request_count = 0
    try:
        client("s3", endpoint, ("AKIAUNKNOWN000000000", "unknown")).list_objects_v2(Bucket=bucket)
        sys.exit("moto_iam: IAM enforcement is not on (an unknown key was let in)")
    except ClientError:
        pass
    print("moto_iam: IAM enforced", file=sys.stderr, flush=True)

    print(json.dumps({"endpoint": endpoint, "keys": keys}), flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
