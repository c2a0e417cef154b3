"""The OpenAPI document lists every route, whichever module was imported first."""
import subprocess
import sys


def test_document_built_before_any_app_lists_feature_routes():
    # a fresh interpreter: nothing but the openapi module imported, no app created yet
    code = ("from control.api import openapi; d = openapi.document(); "
            "print('/api/v1/webhooks/plivo/{channel_id}/transfer' in d['paths'], "
            "'/api/v1/channels/{channel_id}/messages' in d['paths'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["True", "True"], out.stderr[-2000:]
