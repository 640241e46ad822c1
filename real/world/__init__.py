"""The scenario's hosts and VMs built on this machine: Nova's directory layout (``layout``),
where the backend may write (``containment``), plain VMs (``backend``) and the Nova timeline
(``lifecycle``)."""
