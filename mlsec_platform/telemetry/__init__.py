"""What the platform tells the tools that watch it: OpenLineage run events, one JSON line per
request, and the metrics of pipeline runs."""
