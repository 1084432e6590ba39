"""Several machines, one account: documents as jobs on a queue (Dramatiq on Redis), run by
``narrator worker`` processes anywhere, submitted and followed by ``narrator submit``.

Nothing here is imported by ``narrate``, ``watch`` or any other one-machine command: Redis
and Dramatiq are loaded only by the cluster's own commands.
"""
