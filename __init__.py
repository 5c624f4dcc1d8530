"""invoicer: telecom invoice rendering and delivery.

The repository's root is this package: ``billing/``, ``renderer/``, ``delivery/``,
``templates/`` and ``worker.py`` install as ``invoicer.billing``, ``invoicer.renderer``,
``invoicer.delivery``, ``invoicer.templates`` and ``invoicer.worker``, so nothing generic
lands in site-packages while the folders stay where the design card puts them.
"""
