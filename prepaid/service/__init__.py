"""Customer service (客户服务) and the notification workflows' shared parts."""
