"""Evaluating a model and database: `fpkit eval`.

metrics.py  query positions and hit-rate metrics, pure functions on result arrays
run.py      an evaluation run: the database, synthetic queries or real recordings, the searches
truth.py    the ground-truth CSV of real recordings
report.py   report.json and hit_rate.png (the table on stderr is `fpkit.cli.eval`'s)
"""
