"""``hirelc targets``: list the targets (user and shipped) and write a new one for this machine or a remote
device."""

from __future__ import annotations

import typer

from hirelc_agent.protocol import TOKEN_ENV

from .cli_common import emit, json_option
from .errors import TargetError
from .targets.catalog import new_target, target_sources
from .targets.target import DeviceSettings, parse_target

targets_app = typer.Typer(rich_markup_mode=None)


@targets_app.callback(invoke_without_command=True)
def list_targets(ctx: typer.Context, as_json: bool = json_option()):
    """List every target: user targets ($HIRELC_HOME/targets, or $HIRELC_PROFILES) first, then those shipped
    with the package; a user target named like a shipped one replaces it.

    Example: hirelc targets --json
    """
    if ctx.invoked_subcommand is not None:
        return
    listing = [(source, parse_target(source.path)) for source in target_sources()]
    if as_json:
        emit({s.name: {"path": str(s.path), "origin": s.origin, "shadows": str(s.shadows) if s.shadows else None,
                        "backend": t.backend, "execution_provider": t.execution_provider,
                        "precisions": list(t.precisions), "threads": t.threads, "batch_size": t.batch_size,
                        "description": t.description, "device": t.device.url if t.device else None}
              for s, t in listing})
        return
    for s, t in listing:
        origin = f"{s.origin} (shadows shipped)" if s.shadows else s.origin
        print(f"{s.name:14s} {origin:24s} {t.backend}/{t.execution_provider} precisions {','.join(t.precisions)} "
              f"threads {t.threads} batch {t.batch_size}  {t.description}"
              + (f"  on the agent at {t.device.url}" if t.device else ""))
        print(f"{'':14s} {s.path}")


@targets_app.command("new")
def new_cmd(name: str = typer.Argument(..., metavar="NAME", help="Target name (the file stem --target takes)."),
            threads: int = typer.Option(..., "--threads", help="ONNX Runtime intra-op threads."),
            batch: int = typer.Option(..., "--batch", help="Batch size the target serves."),
            precisions: str = typer.Option("fp32,int8", "--precisions", help="Comma-separated precisions."),
            force: bool = typer.Option(False, "--force", help="Overwrite an existing target file of that name."),
            agent: str = typer.Option(None, "--agent", metavar="URL", help="A remote device: the URL of the "
                                      "hirelc-agent running on it (asked for its CPU and providers)."),
            token_env: str = typer.Option(TOKEN_ENV, "--token-env", help="With --agent: the environment variable "
                                          "holding the agent's token (the target file names it, never the token)."),
            provider: str = typer.Option("CPUExecutionProvider", "--execution-provider",
                                         help="ONNX Runtime execution provider."),
            as_json: bool = json_option()):
    """Write a target for this machine's CPU, or for a remote device (--agent), into the user targets directory.

    Examples: hirelc targets new my-cpu-4t --threads 4 --batch 1;
    hirelc targets new pi5 --agent http://127.0.0.1:8790 --threads 4 --batch 1
    """
    chosen = tuple(p.strip() for p in precisions.split(",") if p.strip())
    device = DeviceSettings(agent.rstrip("/"), token_env) if agent else None
    if device is not None and not device.url.startswith(("http://", "https://")):
        raise TargetError(f"--agent {agent}: expected http://HOST:PORT of a running hirelc-agent")
    path = new_target(name, threads, batch, chosen, force=force, agent=device, execution_provider=provider)
    usage = f"hirelc profile --model resnet20 --target {name}"
    if as_json:
        emit({"name": name, "path": str(path), "usage": usage})
        return
    print(f"wrote {path}")
    print(f"use it: {usage}")
