"""The curl examples of docs/api.md ("Managing monitors and components") work as printed: each
runs, in order, with the real curl against a real `uptally serve` of the demo config, and
answers the status the doc gives after it (`# → 201`)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.procs import serving

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "api.md"
SECTION = "## Managing monitors and components"
# Examples shown as text (they need an agent or a secret key): documented, not run here.
NOT_RUN = "### Status pages, locations and channels"
TOKEN = "adm-Doc5Kq8Rt2Wz7Lm4Xv1N"  # the one the doc exports
EXPECTED = re.compile(r"^# → (\d{3})$")


@dataclass(frozen=True, slots=True)
class Example:
    command: str
    status: int


def section(text: str) -> str:
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end != -1 else len(text)]


def sh_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def examples(block: str) -> list[Example]:
    """Commands (continued over lines by `\\` or by an open quote), each followed by its status."""
    found: list[Example] = []
    command: list[str] = []
    for line in block.splitlines():
        match = EXPECTED.match(line.strip())
        if match:
            assert command, f"a status with no command before it in:\n{block}"
            found.append(Example("\n".join(command), int(match[1])))
            command = []
        elif line.strip():
            command.append(line)
    assert not command, f"a command without its status (`# → NNN`) after it:\n{block}"
    return found


def documented() -> list[Example]:
    text = section(DOC.read_text())
    run = text[: text.index(NOT_RUN)]
    return [example for block in sh_blocks(run) for example in examples(block)]


def test_the_section_documents_every_operation_and_gives_each_command_its_status() -> None:
    text = section(DOC.read_text())
    found = documented()
    assert len(found) >= 20
    statuses = {e.status for e in found}
    assert {200, 201, 204, 404, 409, 412, 422} <= statuses
    commands = "\n".join(e.command for e in found)
    for route in (
        "/api/v1/monitors:batch",
        "/clone",
        "If-Match",
        "-X DELETE",
        "/api/v1/components",
        "?tag=",
        "sort=",
        "/changes",
        "?deleted=true",
    ):
        assert route in commands, route
    for route in ("/pause", "/resume", "/check", "/api/v1/monitors/test"):
        assert route in commands, route
    later = text[text.index(NOT_RUN) :]
    for route in ("/api/v1/status-pages", "/api/v1/locations", "/api/v1/channels"):
        assert route in later, route


@pytest.mark.skipif(
    shutil.which("curl") is None and not os.environ.get("UPTALLY_REQUIRE_CURL"),
    reason="the curl binary is not installed (.ci/run installs it)",
)
async def test_every_curl_example_answers_the_status_the_doc_gives(tmp_path: Path) -> None:
    env = {"UPTALLY_ADMIN_TOKEN": TOKEN}
    async with serving(ROOT / "examples" / "demo.yaml", tmp_path / "data", env=env) as (url, _):
        shell_env = {**os.environ, "UPTALLY_URL": url, "TOKEN": TOKEN}
        for number, example in enumerate(documented()):
            body = tmp_path / f"body-{number}"
            # The command as printed; curl writes the body to a file and the status last.
            command = f"{example.command} -o '{body}' -w '%{{http_code}}'"
            process = await asyncio.create_subprocess_exec(
                "bash",
                "-c",
                command,
                env=shell_env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            async with asyncio.timeout(30):
                out, err = await process.communicate()
            answer = body.read_text() if body.exists() else ""
            assert process.returncode == 0, f"{example.command}\n{err.decode()}"
            status = int(out.decode().strip()[-3:])
            assert status == example.status, f"{example.command}\n→ {status}: {answer}"
