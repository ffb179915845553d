"""Monitoring: which stored songs play in a long recording or a live stream, from when to when.

The recording is fingerprinted as its audio arrives (`RecordingPrints`, in `scan`): every other
segment of the database's hop (`SCAN_S`) at once, on a worker thread (`MonitorSession`, in
`session`), and each of those is searched in the index. A hit on row r of song s by segment t
proposes an *alignment*: song s at diagonal k = r - t (segment t of the recording plays row t + k
of the song). `SpanTracker` (in `tracker`) turns the alignments into spans:

1. The alignments that collect hits are the candidates (`candidate_alignments`); for each, the
   similarity of every segment to the stored row it aligns the segment with
   (`alignment_similarities`); a segment not fingerprinted takes the mean of its neighbours'.
2. A best path through "no song" and the candidates (`best_path`): a segment on an alignment
   earns its similarity minus `search.monitor_level`, "no song" earns 0, every change costs
   `SWITCH_PENALTY` (`JUMP_PENALTY` within one song: `switch_costs`). Boundaries land where the
   evidence turns, to a segment or two; a short dip inside a song or a short lucky stretch of
   unknown audio does not pay for two changes.
3. A run that stops a few seconds short of its song's last heard row is carried on to it when
   the segments in between still resemble the song at that alignment (`bridge_to_song_ends`):
   fade-outs and quiet tails drown in background noise. Stored silence after that row is not
   carried on to, as nothing tells whether it played. A run's edges move out over the segments
   beside it that still resemble the song at its alignment more than they resemble the rest of
   the song (`extend_runs`): quiet openings and tails score under the path's level.
4. The segments not fingerprinted next to a change of label, or given to a run by step 3, are
   fingerprinted (`fetch`) and the labels decided again: the edges keep the hop's precision.
5. Consecutive segments of one song whose diagonal moves by at most one hop (sub-hop jitter,
   clock drift) form one span; a larger jump within the song (a loop, a repeat) starts another,
   unless the new alignment explains the open span about as well as its own: then the whole span
   moves to it (an excerpt that began in a passage the song repeats matched both places).
6. A span is kept when `span_decision` accepts it: the search's score (with its lead over the
   best other song) and threshold, with the span taken as one query (of its segments that were
   fingerprinted and that the alignment does not give stored silence).

A segment's label is final once `LAG_S` seconds of audio after it have been seen: spans are
reported as they close, and memory holds that lag, not the recording.
"""

from fpkit.monitor.alignments import Alignments, alignment_similarities, candidate_alignments, typical_similarity
from fpkit.monitor.path import (
    JUMP_PENALTY,
    SWITCH_PENALTY,
    best_path,
    bridge_to_song_ends,
    extend_runs,
    switch_costs,
)
from fpkit.monitor.scan import RecordingPrints
from fpkit.monitor.session import FILE_BLOCK_S, SCAN_S, STEP_S, Monitor, MonitorSession
from fpkit.monitor.tracker import LAG_S, Span, SpanTracker, span_decision

__all__ = [
    "FILE_BLOCK_S",
    "JUMP_PENALTY",
    "LAG_S",
    "SCAN_S",
    "STEP_S",
    "SWITCH_PENALTY",
    "Alignments",
    "Monitor",
    "MonitorSession",
    "RecordingPrints",
    "Span",
    "SpanTracker",
    "alignment_similarities",
    "best_path",
    "bridge_to_song_ends",
    "candidate_alignments",
    "extend_runs",
    "span_decision",
    "switch_costs",
    "typical_similarity",
]
