"""The web UI's pages, one module each; ``include_ui`` adds every module found here."""
