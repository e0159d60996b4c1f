"""What ``station-agent COMMAND --help`` says above the options, for every command.

A command whose parser sets no ``description`` gets the one written here (by its words on the
command line, ``"maintenance start"``), or else its one-line ``help`` as a sentence, so no
command's ``--help`` shows options alone. ``describe_every_command`` runs once on the whole
parser, after every command (plug-ins included) was added.
"""

from __future__ import annotations

import argparse

DESCRIPTIONS = {
    "run": "Run the agent: poll every device, store each reading at once in the buffer, seal "
    "signed batches and send them to every transport until SIGTERM or SIGINT (a clean stop "
    "loses nothing). SIGHUP reloads the configuration. One agent per buffer. With --once: poll "
    "every device once and print what would be sealed; store, sign and send nothing.",
    "demo": "Run the whole chain on loopback: simulated analyzers, the reference warehouse and "
    "an agent, for --seconds; leaves the key, the buffer and the warehouse's database in "
    "--workdir for a look (e.g. with verify).",
    "tt10": "TT10 (Thông tư 10/2021) text files: tools for the files the tt10 transport uploads.",
    "tt10 export": "Write the TT10 files of a time window again, rebuilt from the buffer's "
    "readings (kept for retention_days), into --out; uploads nothing.",
    "config": "Configuration tools: check a file (validate) or print a complete sample.",
    "keygen": "Create the station's Ed25519 signing key in --out: station.key (PKCS#8 PEM, "
    "mode 0600, never overwritten) and its public key station.jwk, to register at the "
    "warehouse.",
    "verify": "Verify signed batches (JWS, one per line, or a warehouse.db): each signature "
    "with the key in force at its seq (rotation records hand the chain on), the chain's prev "
    "links, gaps, replays and forgeries. Findings are counted per reason, the first 5 of each "
    "printed. Exit status 1 on any failure.",
    "requeue": "Send a transport's quarantined batches again, after fixing what made the "
    "warehouse refuse them; the running agent picks them up within seconds (or at its next "
    "start). The buffer must exist: only run creates it.",
    "maintenance start": "Open a maintenance window on DEVICE (or on --channels) for --for: its "
    "readings carry status 01 (calibrating) while it lasts; the start is a signed record in the "
    "chain, naming the technician and the reason.",
    "maintenance stop": "End every window lasting now on DEVICE (or only --window N); the end "
    "is a signed record in the chain.",
    "maintenance list": "The maintenance windows lasting now and those ended in the last 24 h, "
    "with their numbers (for stop --window).",
    "hj212": "HJ 212-2017 datalogger tools.",
    "hj212 decode": "Decode a packet pasted from a datalogger's log (or a bare data segment): "
    "its framing, CRC, header and values, or exactly what is wrong with it; with --config, the "
    "readings the agent would store. Control characters are shown escaped.",
}


def describe_every_command(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> None:
    """Give every sub-command of ``parser`` (at any depth) a description, where it has none."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help for choice in action._choices_actions}
        for name, sub in action.choices.items():
            words = (*path, name)
            if not sub.description:
                text = DESCRIPTIONS.get(" ".join(words)) or helps.get(name) or ""
                sub.description = text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
            describe_every_command(sub, words)
