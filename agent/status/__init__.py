"""What `status` (and the station page) shows: report, key section, figures, health file."""
