"""Infrastructure: settings, workspace discovery, files (later: database, transports)."""
