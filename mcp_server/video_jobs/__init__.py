"""Video jobs: submit, poll, download and take over across restarts and replicas (engine.py).

Above the router (it calls it) and beside the tools; media/ below it keeps the files, previews and fetch guard.
"""
