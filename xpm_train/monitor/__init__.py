"""A terminal view of the xpm-train jobs of an experimaestro workdir and their curves."""
