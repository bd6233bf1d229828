"""Schemathesis hooks for infra/contract/check.sh (loaded through SCHEMATHESIS_HOOKS).

`cargo lambda watch`, the local stand-in for API Gateway, answers a request whose body is not
valid UTF-8 under a textual Content-Type (application/json, text/plain) with its own 500
(`{"type":"https://httpstatuses.com/500",...}`, text/plain) before any function runs: the
service is never asked. That would fail `not_a_server_error` on every run without saying anything
about the service, so such bodies are sent with the invalid bytes replaced by U+FFFD: still not
JSON (the negative test keeps its point and must be answered 400 invalid_request), but deliverable
to the function. Every other request is sent as generated.
"""

import schemathesis


@schemathesis.hook
def before_call(context, case, kwargs):
    body = case.body
    if isinstance(body, (bytes, bytearray)):
        try:
            bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            case.body = bytes(body).decode("utf-8", errors="replace").encode("utf-8")
