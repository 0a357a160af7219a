"""The seeds' Python stack at cold start, measured beside Portico by `make bench`.

What a Python Lambda of the seeds does before its first request: import `stripe` and `boto3`,
build a DynamoDB and a Secrets Manager client, set the Stripe key. Prints `ready` when done and
waits for stdin to close, so the bench can read the process's peak memory first. Endpoints,
region and credentials come from the same AWS variables the Rust functions get.
"""

import os
import sys

import boto3
import stripe

dynamodb = boto3.client("dynamodb")
secrets = boto3.client("secretsmanager")
stripe.api_key = os.environ["STRIPE_SECRET_KEY"]
stripe_client = stripe.StripeClient(os.environ["STRIPE_SECRET_KEY"])

print("ready", flush=True)
sys.stdin.read()
