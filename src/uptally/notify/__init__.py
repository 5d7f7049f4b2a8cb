"""Communication: the incident desk and its automation, commitments, and delivery of events.

Everything here consumes or produces outbox events: incidents change in one transaction with
their events and audit entries; the dispatcher turns events into deliveries to channels and
subscribers, retried until they arrive.
"""
