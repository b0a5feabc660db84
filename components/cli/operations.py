"""Operating commands: ``predict``, ``summary``, ``monitor``, ``reevaluate``, ``serve``, ``serve-model``,
``check-params``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from components.cli import stage_commands  # noqa: F401  (registers first: --help lists the pipeline in order)
from components.cli.app import ParamsOption, app, print_summary
from components.errors import EmosafeError


@app.command()
def predict(
    model: Annotated[str, typer.Option("--model", "-m", help="An exported bundle folder or name@alias.")],
    input: Annotated[
        Path | None, typer.Option("--input", "-i", help="Messages: .jsonl, .csv or .parquet (id, text).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Predictions: .jsonl, .csv or .parquet.")
    ] = None,
    text: Annotated[
        str | None, typer.Option("--text", "-t", help="One message instead of a file: printed, not logged.")
    ] = None,
    params: ParamsOption = Path("params.yaml"),
    log_text: Annotated[bool, typer.Option("--log-text", help="Also write raw text to output and log.")] = False,
) -> None:
    """Batch predictions on ONNX Runtime (int8 by default), appended to the production log (predict.log).

    Each prediction carries id, label (trinary) or categories (taxonomy), scores, model, version and a UTC
    timestamp. Raw text is written nowhere unless --log-text asks for it. With --text, one message is scored and
    its prediction printed as JSON; it is not production traffic, so nothing is logged.
    """
    from components.config import load_params
    from components.stages.predict import predict as run_predict
    from components.stages.predict import predict_text

    if text is not None:
        if input is not None or output is not None:
            raise EmosafeError("give either --text or --input/--output, not both")
        typer.echo(json.dumps(predict_text(load_params(params), model, text), ensure_ascii=False))
        return
    if input is None or output is None:
        raise EmosafeError("give --input and --output (a file of messages), or --text for one message")
    outcome = run_predict(load_params(params), model, input, output, log_text=log_text)
    typer.echo(f"{outcome.output}: {outcome.rows} predictions by {outcome.model}@{outcome.version}; {outcome.counts}")
    typer.echo(f"appended to {outcome.log}")


@app.command()
def summary(params: ParamsOption = Path("params.yaml")) -> None:
    """Print what the last run produced: dataset counts, the per-model table with CIs, the shipped files, the gate
    decision and where the reports are.

    Reads the stage outputs (data summary, reports/evaluate/*.json, exports/*/, ship.json); counts and metrics only,
    never text.
    """
    from components.config import load_params
    from components.stages.prepare import SUMMARY_FILE

    loaded = load_params(params)
    path = Path(loaded.prepare.output_dir) / SUMMARY_FILE
    if not path.is_file():
        raise EmosafeError(f"{path}: not found; run `emosafe prepare` or `dvc repro` first")
    print_summary(json.loads(path.read_text(encoding="utf-8")), str(path.parent))
    _print_models(Path(loaded.evaluate.output_dir), Path(loaded.export.output_dir))
    _print_release(loaded)


monitor_app = typer.Typer()  # the callback's docstring is the command's help
app.add_typer(monitor_app, name="monitor")


@monitor_app.callback(invoke_without_command=True)
def monitor(
    ctx: typer.Context,
    log: Annotated[
        Path | None, typer.Option("--log", help="Production log (JSONL written by `emosafe predict` or the service).")
    ] = None,
    reference: Annotated[
        str | None,
        typer.Option("--reference", help="name@alias (the reference stored with that version) or a reference JSON."),
    ] = None,
    params: ParamsOption = Path("params.yaml"),
    out: Annotated[
        Path | None, typer.Option("--output", "-o", "--out", help="Report folder (default: monitor.output_dir).")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Only predictions at/after this ISO time, or 'last': from where the history ends."
        ),
    ] = None,
) -> None:
    """Test the production log for label-distribution drift against the version's reference.

    Prints a one-screen verdict and writes report.json, windows/*.json and report.html. Exit codes: 0 no drift
    detected, or INSUFFICIENT_SAMPLES (too few predictions to decide; not 'no drift'); 3 drift alarm; 2 bad input
    (names file, line and rule). `--since last` reads only what arrived after the last recorded window (the hourly
    deployment does this). `emosafe monitor history` shows the recorded windows and alarms.
    """
    from components.config import load_params
    from monitoring.monitor import MONITOR_EXIT_ALARM, parse_since, verdict_lines
    from monitoring.monitor import monitor as run_monitor

    if ctx.invoked_subcommand is not None:
        return
    if log is None or reference is None:
        raise EmosafeError("monitor needs --log and --reference (or a sub-command: `emosafe monitor history`)")
    incremental = since == "last"
    result = run_monitor(
        load_params(params), log, Path(reference), out, None if incremental else parse_since(since), incremental
    )
    typer.echo("\n".join(verdict_lines(result)))
    if result.verdict == "ALARM":
        raise typer.Exit(MONITOR_EXIT_ALARM)


@monitor_app.command("history")
def monitor_history(
    model: Annotated[str, typer.Option("--model", "-m", help="Registered model name.")] = "emosafe-trinary",
    version: Annotated[str | None, typer.Option("--version", help="One version (all when omitted).")] = None,
    last: Annotated[int, typer.Option("--last", help="Show the latest N windows (0: all).")] = 30,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """The monitoring history (monitor.history_db): every recorded window with its verdict, alarms first named."""
    from rich.console import Console
    from rich.table import Table

    from components.config import load_params
    from monitoring.history import load_history

    path = Path(load_params(params).monitor.history_db)
    rows = load_history(path, model, version)
    if not rows:
        raise EmosafeError(f"{path}: no monitored window of {model}{'@' + version if version else ''} yet")
    shown = rows[-last:] if last > 0 else rows
    table = Table("version", "rule", "start", "end", "n", "verdict", "alarming signals", title=f"{model} ({path})")
    for row in shown:
        signals = [s["name"] for s in row.assessment.get("signals", []) if s.get("alarm")]
        style = "bold red" if row.verdict == "ALARM" else None
        table.add_row(
            row.version, row.window_rule, row.start, row.end, str(row.n), row.verdict, ", ".join(signals), style=style
        )
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    alarms = sum(row.verdict == "ALARM" for row in rows)
    typer.echo(f"{len(rows)} window(s) recorded, {alarms} alarm(s); {len(shown)} shown")


@app.command()
def reevaluate(
    feedback: Annotated[Path, typer.Option("--feedback", help="Labelled feedback in the dataset schema (.jsonl...).")],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="name@alias; default reevaluate.model per task.")
    ] = None,
    params: ParamsOption = Path("params.yaml"),
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Report path (default: output_dir).")] = None,
) -> None:
    """Re-evaluate the production version on labelled feedback and append the result to its registry history.

    Same evaluation path and bootstrap CIs as `emosafe evaluate`; flags any class/category below its
    register.gate floor. Writes a JSON report (no text). Exit codes: 0 nothing flagged; 3 flagged; 2 bad input
    (names file, row and rule; nothing written, nothing recorded).
    """
    from components.config import load_params
    from components.stages.reevaluate import EXIT_FLAGGED
    from components.stages.reevaluate import reevaluate as run_reevaluate

    outcome = run_reevaluate(load_params(params), Path(), feedback, model, output=output)
    for row in outcome.summary["models"]:
        f1 = row["macro_f1"]
        interval = "" if f1["low"] is None else f" [{f1['low']:.3f}, {f1['high']:.3f}]"
        verdict = "FLAGGED " + ", ".join(row["flagged"]) if row["flagged"] else "ok: every floor holds"
        typer.echo(
            f"{row['name']}@{row['version']} on {row['n']} feedback rows: macro-F1 {f1['value']:.3f}{interval}"
            f"; {verdict}; evaluation #{row['seq']} -> {row['report']}"
        )
    if outcome.flagged:
        raise typer.Exit(EXIT_FLAGGED)


@app.command()
def serve(
    port: Annotated[int, typer.Option("--port", help="Loopback port of the Prefect server.")] = 4200,
    home: Annotated[Path, typer.Option("--home", help="PREFECT_HOME (database, logs).")] = Path(".emosafe/prefect"),
    team: Annotated[
        bool,
        typer.Option(
            "--team",
            help="Also start the shared stack (the `team` extra): PostgreSQL for the registry, an "
            "S3-compatible store for artifacts and DVC, a Dask cluster for the ladder (data in .emosafe/team).",
        ),
    ] = False,
    s3_port: Annotated[int, typer.Option("--s3-port", help="With --team: the object store's S3 port.")] = 8333,
    dask_port: Annotated[int, typer.Option("--dask-port", help="With --team: the Dask scheduler's port.")] = 8786,
    prefect_database: Annotated[
        str | None,
        typer.Option(
            "--prefect-database",
            help="The Prefect server's database (postgresql+asyncpg://...; needs the pg_trgm extension, which the "
            "team stack's PostgreSQL lacks); default: SQLite in --home.",
        ),
    ] = None,
) -> None:
    """Start a local Prefect server on 127.0.0.1, deploy prefect.yaml (schedules included) and run a worker.

    The API asks for basic authentication (any local user could otherwise trigger deployments): the string is
    $EMOSAFE_SERVE_AUTH (user:password) or one generated into <home>/api-auth; the UI asks for it once. Prints the
    UI address and where the login is; Ctrl-C or SIGTERM stops the worker and the server. Runs execute in this
    folder. With --team the worker's runs use the shared registry, and the variables clients need are written to
    team/env.sh beside --home (.emosafe/team/env.sh; docs/team.md).
    """
    import signal

    from flows.serve import api_url, deploy_all, serve_auth, server_env, start_server, start_worker, stop, wait_healthy

    def terminate(*_: object) -> None:
        raise KeyboardInterrupt  # SIGTERM (systemd, docker stop, kill) stops the worker and server like Ctrl-C

    signal.signal(signal.SIGTERM, terminate)
    root = Path.cwd()
    if not (root / "prefect.yaml").is_file():
        raise EmosafeError(f"{root / 'prefect.yaml'}: not found (rule: run `emosafe serve` from the project root)")
    home.mkdir(parents=True, exist_ok=True)
    auth, auth_file = serve_auth(home.resolve())
    env = server_env(port, home.resolve(), auth)
    if prefect_database:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = prefect_database
    stack = _start_team(home.resolve().parent / "team", env, s3_port, dask_port) if team else None
    server = start_server(port, env, home / "server.log")
    worker = None
    try:
        wait_healthy(api_url(port))
        deploy_all(root, env)
        worker = start_worker(root, env, home / "worker.log")
        typer.echo(f"Prefect UI: http://127.0.0.1:{port}  (API {api_url(port)}; logs in {home}); Ctrl-C to stop")
        where = "$EMOSAFE_SERVE_AUTH" if os.environ.get("EMOSAFE_SERVE_AUTH") else str(auth_file)
        typer.echo(f"Login: the UI asks once for the user:password in {where}")
        worker.wait()
    except KeyboardInterrupt:
        typer.echo("stopping")
    finally:
        if worker is not None:
            stop(worker)
        stop(server)
        if stack is not None:
            stack.stop()


def _start_team(folder: Path, env: dict[str, str], s3_port: int, dask_port: int) -> Any:
    """Start the team stack, point ``env`` (server and worker) at it, write its client variables; returns it."""
    from flows.team import start_team

    stack = start_team(folder, s3_port, dask_port)
    env |= stack.env
    lines = [f"export {key}={value}" for key, value in sorted(stack.env.items())]
    (folder / "env.sh").write_text("\n".join(lines) + "\n")
    typer.echo(f"Team stack up: `source {folder / 'env.sh'}` in a shell to use it (docs/team.md)")
    for line in lines:
        typer.echo(f"  {line}")
    return stack


@app.command("serve-model")
def serve_model(
    model: Annotated[
        str, typer.Option("--model", "-m", help="name@alias (followed as it moves), name@version or a bundle folder.")
    ] = "emosafe-trinary@production",
    host: Annotated[str, typer.Option("--host", help="Interface to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    max_batch: Annotated[int, typer.Option("--max-batch", help="Messages per model call, at most.")] = 32,
    max_wait_ms: Annotated[float, typer.Option("--max-wait-ms", help="Wait for a batch to fill, at most.")] = 5.0,
    max_queue: Annotated[int, typer.Option("--max-queue", help="Messages queued before 503.")] = 1024,
    max_request: Annotated[int, typer.Option("--max-request", help="Messages per request before 413.")] = 256,
    reload_every: Annotated[
        float, typer.Option("--reload-every", help="Seconds between alias checks (0: never).")
    ] = 10,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Serve a model over HTTP: POST /predict, GET /healthz, GET /metrics (Prometheus), GET /docs.

    The bundle is checked against its sha256 manifest before it serves. Concurrent requests are micro-batched, and
    every prediction is appended to the production log (predict.log) without its text. When --model names an
    alias, the service follows it: a moved alias is loaded and verified in the background, then swapped in; a
    version that fails to load leaves the old one serving. Example:

        curl -s localhost:8000/predict -H 'content-type: application/json' -d '{"text": "I feel fine"}'
    """
    import uvicorn

    from components.config import load_params
    from components.serving.holder import ModelHolder
    from components.serving.service import ServiceLimits, create_app

    loaded = load_params(params)
    holder = ModelHolder(loaded, model)
    limits = ServiceLimits(max_batch, max_wait_ms, max_queue, max_request, reload_every_s=reload_every)
    served = holder.current
    typer.echo(
        f"serving {served.name} v{served.version} ({served.task}) on http://{host}:{port}; log {loaded.predict.log}"
    )
    uvicorn.run(create_app(holder, Path(loaded.predict.log), limits), host=host, port=port, log_level="warning")


@app.command("check-params")
def check_params(
    files: Annotated[list[Path] | None, typer.Argument(help="Params files to check.")] = None,
) -> None:
    """Validate params files against the typed configuration; exits non-zero naming the bad key."""
    from components.config import load_params

    for file in files or [Path("params.yaml")]:
        loaded = load_params(file)
        typer.echo(f"{file}: ok ({len(loaded.prepare.sources)} source(s), seed {loaded.seed})")


@app.command("pipeline-file")
def pipeline_file(
    params: Annotated[
        Path, typer.Option("--params", "-p", help="The profile's params file, e.g. configs/real/params.yaml.")
    ],
    check: Annotated[
        bool, typer.Option("--check", help="Only say whether the written file is current (exit 1 if not).")
    ] = False,
) -> None:
    """Write a params profile's own DVC pipeline (the dvc.yaml beside its params file), derived from the root
    dvc.yaml: same stages, commands and code deps; the profile's params file, paths, sources, suites and ladder.

    Run it from the project root after editing dvc.yaml or the profile; then `dvc repro <folder>/dvc.yaml` or
    `python -m flows --params <file>` runs the profile end to end with its own dvc.lock.
    """
    import yaml

    from components.config import load_params
    from components.io import atomic_write_bytes
    from components.profile_pipeline import missing_params, pipeline_path, profile_pipeline, render

    relative = params.as_posix()
    pipeline = profile_pipeline(
        yaml.safe_load(Path("dvc.yaml").read_text(encoding="utf-8")),
        load_params("params.yaml"),
        load_params(params),
        relative,
    )
    missing = missing_params(pipeline, yaml.safe_load(params.read_text(encoding="utf-8")))
    if missing:  # DVC reads the file, not the typed defaults: a stage would run, then fail to record
        raise EmosafeError(f"{relative}: write these keys out (DVC records them from the file): {', '.join(missing)}")
    text = render(pipeline, relative)
    target = Path(pipeline_path(relative))
    current = target.is_file() and target.read_text(encoding="utf-8") == text
    if check:
        typer.echo(f"{target}: {'current' if current else f'stale; run `emosafe pipeline-file --params {relative}`'}")
        raise typer.Exit(0 if current else 1)
    if not current:
        atomic_write_bytes(target, text.encode("utf-8"))
    typer.echo(f"{target}: {'unchanged' if current else 'written'}")


def _print_release(loaded: Any) -> None:
    """The ship stage's gate decision per task, then where each report lives (paths only)."""
    from components.report.summary import gate_rows, next_steps, where_lines

    ship_file = Path(loaded.ship.output)
    rows = gate_rows(json.loads(ship_file.read_text(encoding="utf-8"))) if ship_file.is_file() else []
    for row in rows:
        why = f": {'; '.join(row.reasons)}" if row.reasons else ""
        typer.echo(
            f"Gate ({ship_file}) {row.task}: {row.name}@{row.version} {row.status}"
            f"{f' -> {loaded.ship.alias}' if row.moved else ''}{why}"
        )
    wandb_dir = Path(os.environ.get("WANDB_DIR") or loaded.train.wandb.dir) / "wandb"
    places = {
        "Scaling report": str(Path(loaded.report.output_dir) / "scaling.md"),
        "Data Docs": str(Path(loaded.validate.output_dir) / "data_docs" / "index.html"),
        "Drift report": str(Path(loaded.monitor.output_dir) / "report.html"),
        "W&B offline runs": str(wandb_dir),
        "Browsable site (`emosafe site` writes it)": "reports/site/index.html",
    }
    typer.echo("\n".join(where_lines(places, {what: Path(path).exists() for what, path in places.items()})))
    typer.echo("\nNext steps:")
    for line in next_steps(rows, loaded.ship.alias, sorted(str(p) for p in wandb_dir.glob("offline-run-*"))):
        typer.echo(f"  {line}")


def _print_models(evaluate_dir: Path, export_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from components.report.summary import export_row, model_rows, suite_rows

    console = Console(width=None if sys.stdout.isatty() else 150)
    reports = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(evaluate_dir.glob("*.json"))]
    if reports:
        table = Table(
            "task",
            "setting",
            "model",
            "n",
            "accuracy [95% CI]",
            "macro-F1 [95% CI]",
            "critical recall",
            "canaries failed",
            title=f"Test split ({evaluate_dir})",
        )
        for row in model_rows(reports):
            table.add_row(
                row.task,
                row.setting,
                row.model,
                str(row.n),
                row.accuracy,
                row.macro_f1,
                row.critical_recall,
                str(row.canaries_failed),
            )
        console.print(table)
    suites = suite_rows(reports)
    if suites:
        table = Table(
            "suite",
            "task",
            "setting",
            "model",
            "n",
            "unsafe recall",
            "unsafe flagged at all",
            "safe flagged",
            title="Evaluation suites (docs/evaluation.md)",
        )
        for suite in suites:
            table.add_row(*(str(value) for value in vars(suite).values()))
        console.print(table)
    bundles = sorted(p for p in export_dir.glob("*/quantization.json"))
    if bundles:
        table = Table(
            "bundle",
            "int8 MB",
            "parity max|diff|",
            "int8 macro-F1 drop",
            "int8 agreement",
            "checks",
            title=f"Shipped files ({export_dir})",
        )
        for quantization in bundles:
            folder = quantization.parent
            shipped = export_row(
                folder.name,
                json.loads((folder / "parity.json").read_text(encoding="utf-8")),
                json.loads(quantization.read_text(encoding="utf-8")),
                (folder / "model_int8.onnx").stat().st_size,
            )
            passed = "pass" if shipped.parity_passed and shipped.int8_passed else "FAIL"
            figures = (
                f"{shipped.parity_max_abs_diff:.2e}",
                f"{shipped.int8_macro_f1_drop:+.4f}",
                f"{shipped.int8_label_agreement:.3f}",
            )
            table.add_row(str(folder / "model_int8.onnx"), str(shipped.int8_mb), *figures, passed)
        console.print(table)
