"""Pure tests: usage-header parsing and the error taxonomy (Meta's usage headers and error codes)."""

from __future__ import annotations

import json

import pytest

from scheduler.graph.errors import (
    ErrorClass,
    GraphError,
    GraphUnavailable,
    UploadError,
    classify,
    redact,
)
from scheduler.graph.usage import Usage, UsageFigures, parse_usage

C = ErrorClass
TOKEN = "IGAAJtestTOKENvalue0123456789abcdefXYZ"


# --- usage headers -------------------------------------------------------------------------


def _buc(**objects: list[dict[str, object]]) -> str:
    return json.dumps(objects)


def test_parse_real_looking_headers() -> None:
    headers = {
        "X-App-Usage": '{"call_count":28,"total_time":25,"total_cputime":12}',
        "X-Business-Use-Case-Usage": _buc(
            **{
                "17841400000000001": [
                    {
                        "type": "instagram",
                        "call_count": 41,
                        "total_cputime": 3,
                        "total_time": 7,
                        "estimated_time_to_regain_access": 0,
                    }
                ]
            }
        ),
    }
    usage = parse_usage(headers)
    assert usage.app == UsageFigures(call_count=28, total_cputime=12, total_time=25)
    assert usage.app.max_pct == 28
    assert usage.buc == {"17841400000000001": UsageFigures(41, 3, 7, 0)}
    assert usage.max_pct() == 41
    assert usage.max_pct("17841400000000001") == 41
    assert usage.regain_seconds() == 0.0


def test_header_names_are_case_insensitive() -> None:
    headers = {
        "x-app-usage": '{"call_count":5,"total_time":1,"total_cputime":1}',
        "X-BUSINESS-USE-CASE-USAGE": _buc(
            a=[{"type": "instagram", "call_count": 1, "total_cputime": 2, "total_time": 3}]
        ),
    }
    usage = parse_usage(headers)
    assert usage.app is not None and usage.app.call_count == 5
    assert usage.buc["a"].total_time == 3


def test_several_objects_and_types() -> None:
    headers = {
        "X-Business-Use-Case-Usage": _buc(
            **{
                "111": [
                    {"type": "instagram", "call_count": 10, "total_cputime": 5, "total_time": 5},
                    # several instagram entries for one id: the max of each figure wins
                    {
                        "type": "instagram",
                        "call_count": 4,
                        "total_cputime": 60,
                        "total_time": 2,
                        "estimated_time_to_regain_access": 3,
                    },
                    # other products are not ours to count
                    {"type": "pages", "call_count": 99, "total_cputime": 99, "total_time": 99},
                ],
                "222": [
                    {
                        "type": "instagram",
                        "call_count": 100,
                        "total_cputime": 1,
                        "total_time": 1,
                        "estimated_time_to_regain_access": 12,
                    }
                ],
                "333": [{"type": "ads_management", "call_count": 100}],
            }
        )
    }
    usage = parse_usage(headers)
    assert set(usage.buc) == {"111", "222"}
    assert usage.buc["111"] == UsageFigures(10, 60, 5, 3)
    assert usage.max_pct("111") == 60
    assert usage.max_pct("222") == 100
    assert usage.max_pct() == 100  # all objects
    # minutes → seconds
    assert usage.regain_seconds("111") == 180.0
    assert usage.regain_seconds("222") == 720.0
    assert usage.regain_seconds() == 720.0


def test_max_pct_takes_app_figures_too() -> None:
    usage = Usage(app=UsageFigures(95, 1, 1), buc={"1": UsageFigures(10, 10, 10)})
    assert usage.max_pct("1") == 95
    assert Usage().max_pct() == 0
    assert Usage().regain_seconds() == 0.0
    assert Usage().is_empty


def test_unknown_account_falls_back_to_all_objects() -> None:
    # With Facebook Login the key can be a business/Page id, not the IG user id.
    usage = Usage(buc={"page-1": UsageFigures(70, 1, 1, 2)})
    assert usage.max_pct("17841400000000001") == 70
    assert usage.regain_seconds("17841400000000001") == 120.0


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-App-Usage": ""},
        {"X-App-Usage": "not json"},
        {"X-App-Usage": "[1,2,3]"},
        {"X-App-Usage": "{}"},
        {"X-App-Usage": '{"call_count": true}'},
        {"X-App-Usage": '{"call_count": "NaN"}'},
        {"X-Business-Use-Case-Usage": "{"},
        {"X-Business-Use-Case-Usage": "null"},
        {"X-Business-Use-Case-Usage": '{"1": "x"}'},
        {"X-Business-Use-Case-Usage": '{"1": [1, "a", null]}'},
        {"X-Business-Use-Case-Usage": '{"1": [{"call_count": 5}]}'},  # no type
        {"X-Business-Use-Case-Usage": '{"1": [{"type": "instagram"}]}'},  # no figures
        {"X-Business-Use-Case-Usage": '{"1": [{"type": 7, "call_count": 5}]}'},
    ],
)
def test_missing_or_malformed_headers_never_raise(headers: dict[str, str]) -> None:
    usage = parse_usage(headers)
    assert usage.app is None
    assert usage.buc == {}


def test_partial_and_stringly_figures_are_tolerated() -> None:
    usage = parse_usage(
        {
            "X-App-Usage": '{"call_count": "17", "total_time": 3.9}',
            "X-Business-Use-Case-Usage": '{"9": {"type": "INSTAGRAM", "call_count": 8,'
            ' "estimated_time_to_regain_access": "4"}}',
        }
    )
    assert usage.app == UsageFigures(17, 0, 3)
    assert usage.buc["9"] == UsageFigures(8, 0, 0, 4)
    assert usage.regain_seconds("9") == 240.0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # Instagram Login's shape
        ('{"call_volume":42,"cpu_time":7}', UsageFigures(42, 7, 0)),
        ('{"call_volume":"12","cpu_time":99.5}', UsageFigures(12, 99, 0)),
        ('{"cpu_time":3}', UsageFigures(0, 3, 0)),
        ('{"call_volume":100}', UsageFigures(100, 0, 0)),
        # Facebook Login's shape, unchanged
        ('{"call_count":5,"total_cputime":6,"total_time":7}', UsageFigures(5, 6, 7)),
        # mixes: the busier value of a figure counts
        ('{"call_volume":30,"call_count":20,"total_time":4}', UsageFigures(30, 0, 4)),
        ('{"call_count":50,"call_volume":10,"cpu_time":8,"total_cputime":9}', UsageFigures(50, 9, 0)),
        ('{"call_volume":null,"cpu_time":"x","call_count":3}', UsageFigures(3, 0, 0)),
        ('{"call_volume":-4,"cpu_time":true,"total_time":2}', UsageFigures(0, 0, 2)),
    ],
)
def test_app_usage_in_both_shapes(raw: str, expected: UsageFigures) -> None:
    usage = parse_usage({"X-App-Usage": raw})
    assert usage.app == expected
    assert usage.max_pct() == expected.max_pct


@pytest.mark.parametrize("raw", ['{"call_volume":null,"cpu_time":null}', '{"calls":5}', '[1,2]'])
def test_app_usage_without_any_known_figure_is_absent(raw: str) -> None:
    assert parse_usage({"X-App-Usage": raw}).app is None


def test_buc_entries_accept_the_instagram_login_names_too() -> None:
    usage = parse_usage(
        {"X-Business-Use-Case-Usage": '{"7": [{"type": "instagram", "call_volume": 61, "cpu_time": 2,'
                                       ' "estimated_time_to_regain_access": 0}]}'}
    )
    assert usage.buc["7"] == UsageFigures(61, 2, 0, 0)


def test_parse_usage_accepts_httpx_headers() -> None:
    import httpx

    headers = httpx.Headers({"X-App-Usage": '{"call_count":1,"total_time":2,"total_cputime":3}'})
    assert parse_usage(headers).max_pct() == 3


# --- classification ------------------------------------------------------------------------

FACTS_TABLE: list[tuple[int, int | None, ErrorClass]] = [
    # publishing error codes
    (-2, 2207003, C.TRANSIENT),
    (-1, 2207001, C.TRANSIENT),
    (-1, 2207032, C.RECREATE),
    (-1, 2207053, C.RECREATE),
    (-2, 2207020, C.RECREATE),
    (24, 2207008, C.RETRY_THEN_RECREATE),
    (24, 2207006, C.RECREATE),
    (9007, 2207027, C.NOT_READY),
    (9004, 2207052, C.PERMANENT),
    (9, 2207042, C.QUOTA),
    (4, 2207051, C.SPAM),
    (25, 2207050, C.ACCOUNT_RESTRICTED),  # a person must act in the app: pause, not fail
    (352, 2207026, C.PERMANENT),
    (36000, 2207004, C.PERMANENT),
    (36001, 2207005, C.PERMANENT),
    (36003, 2207009, C.PERMANENT),
    (36004, 2207010, C.PERMANENT),
    (1, 2207057, C.PERMANENT),
    (100, 2207023, C.PERMANENT),
    (100, 2207028, C.PERMANENT),
    (100, 2207040, C.PERMANENT),
    (100, 33, C.NOT_FOUND_FRESH),
    (20, 1772107, C.AMBIGUOUS),
]

GENERIC: list[tuple[int, int | None, ErrorClass]] = [
    (1, None, C.TRANSIENT),
    (2, None, C.TRANSIENT),
    (4, None, C.APP_THROTTLED),
    (4, 1234, C.APP_THROTTLED),
    (341, None, C.APP_THROTTLED),
    (17, None, C.THROTTLED),
    (32, None, C.THROTTLED),
    (613, None, C.THROTTLED),
    (80001, None, C.THROTTLED),
    (80002, None, C.THROTTLED),
    (80006, None, C.THROTTLED),
    (80004, None, C.THROTTLED),  # other BUC codes of the 800xx family
    (10, None, C.AUTH),
    (102, None, C.AUTH),
    (200, None, C.AUTH),
    (250, None, C.AUTH),
    (299, None, C.AUTH),
    (190, None, C.AUTH),
    *[(190, sub, C.AUTH) for sub in (458, 459, 460, 463, 464, 467, 492)],
    (368, None, C.POLICY_BLOCKED),  # temporarily blocked: pause with a backoff
    (368, 1390008, C.POLICY_BLOCKED),
    (506, None, C.PERMANENT),
    (551, None, C.PERMANENT),
    (100, None, C.PERMANENT),
    (100, 2207999, C.PERMANENT),
    (36000, None, C.PERMANENT),
    (9, None, C.QUOTA),
    (9007, None, C.NOT_READY),
    (24, None, C.RETRY_THEN_RECREATE),
    (-1, 2207999, C.TRANSIENT),
    (12345, None, C.PERMANENT),
    # DM errors are about the recipient, not our token
    (10, 2534022, C.PERMANENT),
    (200, 2534041, C.PERMANENT),
]


@pytest.mark.parametrize(("code", "subcode", "expected"), FACTS_TABLE + GENERIC)
def test_classify_table(code: int, subcode: int | None, expected: ErrorClass) -> None:
    assert classify(code, subcode, None, 400) is expected
    # A Graph body on an HTTP 500 is classified by its code just the same.
    assert classify(code, subcode, None, 500) is expected


def test_is_transient_applies_only_without_a_more_specific_class() -> None:
    assert classify(12345, None, True, 400) is C.TRANSIENT
    assert classify(368, None, True, 400) is C.POLICY_BLOCKED  # a pause, whatever the flag
    assert classify(12345, None, False, 400) is C.PERMANENT
    # specific rows win
    assert classify(100, 2207028, True, 400) is C.PERMANENT
    assert classify(190, 463, True, 400) is C.AUTH
    assert classify(80002, None, True, 400) is C.THROTTLED
    assert classify(4, 2207051, True, 400) is C.SPAM


def test_subcode_zero_means_none() -> None:
    assert classify(1, 0, None, 500) is C.TRANSIENT


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, C.AMBIGUOUS),  # no answer at all
        (500, C.AMBIGUOUS),
        (502, C.AMBIGUOUS),
        (503, C.AMBIGUOUS),
        (200, C.AMBIGUOUS),  # an answer we could not read
        (429, C.THROTTLED),
        (408, C.TRANSIENT),
        (404, C.PERMANENT),
        (400, C.PERMANENT),
    ],
)
def test_classify_without_graph_body(status: int | None, expected: ErrorClass) -> None:
    assert classify(None, None, None, status) is expected


# --- exceptions ----------------------------------------------------------------------------


def test_graph_error_string_and_fields() -> None:
    err = GraphError.from_body(
        {
            "message": "Media ID is not available",
            "type": "OAuthException",
            "code": 9007,
            "error_subcode": 2207027,
            "is_transient": False,
            "error_user_title": "Media not ready",
            "error_user_msg": "The media is not ready for publishing, please wait a moment",
            "fbtrace_id": "AbC123xyz",
        },
        http_status=400,
    )
    assert str(err) == (
        "Graph error 9007/2207027 (media not ready): Media ID is not available"
        " [fbtrace_id AbC123xyz]"
    )
    assert err.error_class is C.NOT_READY
    assert (err.code, err.subcode, err.type, err.http_status) == (
        9007,
        2207027,
        "OAuthException",
        400,
    )
    assert err.user_title == "Media not ready"
    assert err.is_transient is False
    assert "NOT_READY" in repr(err)


def test_graph_error_tolerates_odd_bodies() -> None:
    err = GraphError.from_body({"code": "190", "error_subcode": "463"}, http_status=401)
    assert (err.code, err.subcode, err.error_class) == (190, 463, C.AUTH)
    assert str(err).startswith("Graph error 190/463 (access token invalid or expired)")
    weird = GraphError.from_body({"code": None, "message": 5}, http_status=400)
    assert weird.code is None and weird.error_class is C.PERMANENT


def test_unknown_code_string_has_no_label() -> None:
    err = GraphError("boom", code=12345)
    assert str(err) == "Graph error 12345: boom"


def test_graph_error_never_contains_the_token() -> None:
    err = GraphError.from_body(
        {
            "message": f"Invalid OAuth access token - Cannot parse access token {TOKEN}",
            "code": 190,
            "error_user_msg": f"token {TOKEN} is bad",
            "fbtrace_id": "x",
        },
        http_status=400,
        secrets=[TOKEN],
    )
    for text in (str(err), repr(err), err.message, err.user_msg or "", str(err.args)):
        assert TOKEN not in text
    # Meta's usual wording survives redaction.
    assert "Invalid OAuth access token" in err.message


def test_redact_patterns_without_known_secret() -> None:
    fb_token = "EAAB" + "x" * 40
    text = f"GET /me?access_token=abc123&fields=id Authorization: Bearer {fb_token} {TOKEN}"
    cleaned = redact(text)
    assert cleaned is not None
    assert "abc123" not in cleaned and fb_token not in cleaned and TOKEN not in cleaned
    assert "fields=id" in cleaned
    assert redact(None) is None


def test_transport_and_upload_errors() -> None:
    connect = GraphUnavailable("connect", "refused")
    assert connect.error_class is C.TRANSIENT
    for kind in ("timeout", "connection", "http_5xx", "bad_answer"):
        assert GraphUnavailable(kind, "x").error_class is C.AMBIGUOUS
    with pytest.raises(ValueError):
        GraphUnavailable("nope", "x")
    assert isinstance(connect, GraphError)
    assert str(GraphUnavailable("http_5xx", "bad gateway", http_status=502)) == (
        "Graph API unavailable (http_5xx, HTTP 502): bad gateway"
    )

    assert UploadError("try again", retriable=True).error_class is C.TRANSIENT
    final = UploadError("bad file", retriable=False, type="ProcessingFailedError")
    assert final.error_class is C.PERMANENT
    assert str(final) == "Upload failed (not retriable, ProcessingFailedError): bad file"
