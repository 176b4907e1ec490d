"""Edge node: cameras, triggers, recognition, passage assembly, spool and publisher."""
