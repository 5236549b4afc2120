"""Platform connectors: one module per platform (demo, twitter, vk, reddit, rss, discourse).

Nothing is registered here: connectors are registered in ``otklik.connectors`` by import
path (``"collectors.vk:VkConnector"``) and loaded with ``otklik.connectors.Registry``, so
importing this package imports no client library. Each connector class declares its
``settings`` (``otklik.connectors.Setting``); one that can answer on its platform
implements ``reply`` and ``reply_limit`` (the ``Replier`` capability).
"""
