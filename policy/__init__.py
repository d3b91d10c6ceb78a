"""The EDW CrossGuard policy pack (``pulumi preview --policy-pack policy``).

``rules`` holds every rule and ``offline`` runs them against a stack recorded under mocks.
``__main__.py`` only builds the PolicyPack, whose constructor starts the policy server.
"""
