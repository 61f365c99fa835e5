"""The runbook the service serves at /runbook: every alert's section, escaped, read-only."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from exporter import runbook

ROOT = Path(__file__).resolve().parent.parent


def test_the_page_has_a_section_for_every_alert_link(client):
    reply = client.simulate_get("/runbook")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in reply.headers["content-security-policy"]
    alerts = {
        rule["alert"]
        for path in (ROOT / "rules").glob("*.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    for alert in alerts:
        assert f'<h2 id="{alert.lower()}">{alert}</h2>' in reply.text
    assert client.simulate_post("/runbook").status_code == 405


def test_the_page_is_rendered_from_docs_runbook_md_which_ships_in_the_package():
    shipped = (ROOT / "docs" / "runbook.md").read_text("utf-8")
    assert runbook.load_markdown() == shipped
    assert (ROOT / "exporter" / "runbook.md").resolve() == (ROOT / "docs" / "runbook.md")
    package_data = re.search(r'\n"exporter" = \[(.*)\]', (ROOT / "pyproject.toml").read_text())
    assert package_data and '"runbook.md"' in package_data.group(1)


def test_text_is_escaped_and_only_anchor_or_web_links_become_links():
    page = runbook.render(
        "# T <b>\n\n## A & B\n\nSee [x](#a--b), [y](javascript:alert(1)) and <script>z</script>"
        "\n\n1. `<i>` **bold** *em*\n   more\n\n```sh\necho '<tag>' && true\n```\n"
    )
    assert "<title>T &lt;b&gt;</title>" in page
    assert '<h2 id="a--b">A &amp; B</h2>' in page
    assert '<a href="#a--b">x</a>' in page
    assert 'href="javascript' not in page
    assert "<script>" not in page and "&lt;script&gt;z&lt;/script&gt;" in page
    assert (
        '<p class="item">1. <code>&lt;i&gt;</code> <strong>bold</strong> <em>em</em> more</p>'
        in page
    )
    assert "<pre><code>echo &#x27;&lt;tag&gt;&#x27; &amp;&amp; true</code></pre>" in page
