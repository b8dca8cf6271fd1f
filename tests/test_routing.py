"""Path templates: converters, static and dynamic routes, conflicts."""

import uuid

import pytest

from wsgate import ConfigurationError
from wsgate.routing import Router


def test_static_and_dynamic_routes_with_converters() -> None:
    router = Router(
        [
            ("/", "root"),
            ("/chat/{room}", "chat"),
            ("/chat/{room}/stats", "stats"),
            ("/items/{n:int}", "item"),
            ("/objects/{key:uuid}", "object"),
            ("/files/{rest:path}", "file"),
            ("lobby", "lobby"),
        ]
    )
    assert router.match("/") == (router.routes[0], {})
    assert router.match("/lobby/")[0].target == "lobby"  # type: ignore[index]

    def target(path: str) -> tuple[str, dict[str, object]] | None:
        m = router.match(path)
        return None if m is None else (m[0].target, m[1])

    assert target("/chat/abc") == ("chat", {"room": "abc"})
    assert target("/chat/abc/stats") == ("stats", {"room": "abc"})
    assert target("/items/-12") == ("item", {"n": -12})
    key = uuid.uuid4()
    assert target(f"/objects/{key}") == ("object", {"key": key})
    assert target("/files/a/b/c.txt") == ("file", {"rest": "a/b/c.txt"})
    assert target("/items/x") is None
    assert target("/objects/not-a-uuid") is None
    assert target("/chat") is None
    assert target("/nowhere") is None


def test_conflicts_and_malformed_templates() -> None:
    with pytest.raises(ConfigurationError, match="share the path template '/a/{x}'"):
        Router([("/a/{x}", 1), ("/a/{y}", 2)])
    with pytest.raises(ConfigurationError, match="share the path template"):
        Router([("/a", 1), ("/a/", 2)])
    with pytest.raises(ConfigurationError, match="unknown converter 'float'"):
        Router([("/a/{x:float}", 1)])
    with pytest.raises(ConfigurationError, match="appears twice"):
        Router([("/a/{x}/{x}", 1)])
    with pytest.raises(ConfigurationError, match="unbalanced braces"):
        Router([("/a/{x", 1)])
    # Different converters at the same place are different routes.
    Router([("/a/{x:int}", 1), ("/a/{x}", 2)])


def test_many_routes_match_by_one_regex() -> None:
    router = Router([(f"/r{i}/{{id:int}}", i) for i in range(200)])
    m = router.match("/r137/5")
    assert m is not None and m[0].target == 137 and m[1] == {"id": 5}
