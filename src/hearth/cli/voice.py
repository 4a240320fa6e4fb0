"""`hearth transcribe`, `hearth speak` and `hearth voice`: speech through a running Hearth server."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import orjson
import typer

from hearth.cli.client_commands import KEY_OPTION, URL_OPTION, endpoint, fail_with
from hearth.cli.http import unreachable
from hearth.cli.main import app


def _post(url: str, **kwargs: object) -> httpx.Response:
    try:
        response = httpx.post(url, timeout=300, **kwargs)  # type: ignore[arg-type]
    except httpx.TransportError as exc:
        raise unreachable(exc) from None
    if response.status_code != 200:
        fail_with(response)
    return response


@app.command()
def transcribe(
    audio: Path = typer.Argument(..., exists=True, dir_okay=False, help="wav, webm, mp3, ogg, m4a or flac"),
    model: str = typer.Option("stt", help="Transcription alias."),
    response_format: str = typer.Option("text", "--format", help="text, json, verbose_json, srt or vtt."),
    language: str | None = typer.Option(None, help="Spoken language code, e.g. en."),
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """Print what is said in an audio file."""
    base, headers = endpoint(url, api_key)
    data = {"model": model, "response_format": response_format}
    if language:
        data["language"] = language
    response = _post(
        f"{base}/v1/audio/transcriptions",
        headers=headers,
        files={"file": (audio.name, audio.read_bytes())},
        data=data,
    )
    typer.echo(response.text.rstrip("\n"))


@app.command()
def speak(
    text: str = typer.Argument(..., help="What to say."),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Audio file to write (.wav, .mp3, .opus, .flac)."
    ),
    model: str = typer.Option("tts", help="Speech alias."),
    voice: str = typer.Option("default", help="Voice name (an embedded piper backend has one)."),
    speed: float = typer.Option(1.0, min=0.25, max=4.0),
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """Synthesize speech into a file; the format follows the file's extension."""
    fmt = output.suffix.lstrip(".").lower() or "wav"
    if fmt not in ("wav", "mp3", "opus", "flac", "pcm"):
        raise typer.BadParameter("use a .wav, .mp3, .opus, .flac or .pcm file name", param_hint="--output")
    base, headers = endpoint(url, api_key)
    body = {"model": model, "input": text, "voice": voice, "response_format": fmt, "speed": speed}
    response = _post(f"{base}/v1/audio/speech", headers=headers, json=body)
    output.write_bytes(response.content)
    typer.echo(f"wrote {output} ({len(response.content)} bytes)")


@app.command()
def voice(
    audio: Path = typer.Argument(..., exists=True, dir_okay=False, help="Your question: wav, webm or mp3."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the spoken answer (.wav, .mp3)."),
    rag: bool | None = typer.Option(None, "--rag/--no-rag", help="Ground the answer in a collection."),
    collection: str | None = typer.Option(None, help="RAG collection."),
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """Ask a spoken question; print the transcript, the answer and the latency, and save the spoken answer."""
    fmt = output.suffix.lstrip(".").lower() or "wav"
    base, headers = endpoint(url, api_key)
    data = {"audio_format": fmt}
    if rag is not None:
        data["enable_rag"] = "true" if rag else "false"
    if collection:
        data["collection"] = collection
    response = _post(
        f"{base}/api/voice", headers=headers, files={"file": (audio.name, audio.read_bytes())}, data=data
    )
    body = response.json()
    output.write_bytes(base64.b64decode(body["audio_b64"]))
    typer.echo(f"you:    {body['transcription']}")
    typer.echo(f"hearth: {body['response_text']}")
    typer.echo(f"latency ms: {orjson.dumps(body['latency']).decode()}")
    typer.echo(f"wrote {output}")
