"""TT10/2021 text files over FTP, FTPS and SFTP (docs/tt10.md).

``fileformat`` (pure: readings -> file bytes), ``config`` (the ``[[transports]]`` section),
``uploaders`` (one small class per protocol), ``delivery`` (atomic upload, skip what the server
has), ``ledger`` (which period's file was delivered, in buffer.db), ``transport`` (the loop).
"""
