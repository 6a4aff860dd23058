"""The ferryml HTTP server: model serving and its REST API."""
