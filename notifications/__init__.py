"""Push delivery through FCM, independent of the app's models and of the solver.

The outbox worker renders a due row with :func:`notifications.messages.build_push`, hands the
pushes to :meth:`notifications.fcm.FcmSender.send`, and acts on each
:class:`notifications.fcm.SendResult`: mark sent, reschedule (honouring ``retry_after_s``),
drop the token, or give up. :mod:`notifications.fakefcm` stands in for FCM in tests and demos.
"""
