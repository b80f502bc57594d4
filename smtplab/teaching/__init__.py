"""The teaching layer: what the notebooks and the course are built from.

``lab`` (a server and a client wired together in-process), ``scenarios`` (server settings, a
client script and an explanation, run by name), ``traffic`` (simulated sessions for plots),
``exercises`` (answers that check themselves) and ``course`` (the notebooks as a website).
The everyday names are on the package itself: ``smtplab.Lab``, ``smtplab.scenarios()``,
``smtplab.simulate``.
"""
