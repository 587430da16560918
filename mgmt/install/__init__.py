"""What an operator installs beside the package: systemd units (``zeek-mgmt systemd
install``), shell completion (``zeek-mgmt completion bash|zsh``) and the man page
(``zeek-mgmt man``). The unit templates are package data (``units/``)."""
