"""Results on disk: tidy tables with a schema each (`table`), a finished run's rows (`collect`),
where a row came from (`provenance`), and moving results between machines (`pack`, `merge`)."""
