"""`hotline report`: the archive's SLA figures for a window as one self-contained HTML
page (tables, and matplotlib charts inlined as SVG).

- `page.render_report(tickets, transfers, conferences, window, platform)`: the page from
  rows, no I/O (figures from telephony.archive.measures);
- `charts`: the five charts (answer time, SLA by hour, transfer setup per direction,
  three-party outcomes, diversions);
- `cli.write_report(dsn, start, end, platform, out)`: load, render, write; and the
  subcommand.

Nothing here is imported by `hotline` until the subcommand runs: matplotlib loads then.
"""
