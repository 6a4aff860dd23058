"""Every route the mlflow client's services define (their protos' endpoints), each called
once against ferry server with an empty body: prints [method, path, status, error_code]
per route, error_code None for a JSON answer without one and "not JSON" otherwise."""

import json
import os
import re

import requests
from mlflow.protos import mlflow_artifacts_pb2, model_registry_pb2, service_pb2, webhooks_pb2
from mlflow.utils.rest_utils import extract_all_api_info_for_service

SERVICES = [
    (service_pb2.MlflowService, "/api/2.0"),
    (model_registry_pb2.ModelRegistryService, "/api/2.0"),
    (mlflow_artifacts_pb2.MlflowArtifactsService, "/api/2.0"),
    (webhooks_pb2.WebhookService, "/api/2.0"),
]
base = os.environ["MLFLOW_TRACKING_URI"]
headers = {"Authorization": f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}"}
seen, rows = set(), []
for service, prefix in SERVICES:
    for endpoints in extract_all_api_info_for_service(service, prefix).values():
        for path, method in endpoints:
            if (method, path) in seen:
                continue
            seen.add((method, path))
            url = base + re.sub(r"\{[^}]+\}", "x", path)
            body = None if method == "GET" else {}
            answer = requests.request(method, url, json=body, headers=headers, timeout=30)
            try:
                code = answer.json().get("error_code") if answer.content else None
            except ValueError:
                code = "not JSON"
            rows.append([method, path, answer.status_code, code])
print(json.dumps(rows))
