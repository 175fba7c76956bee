"""What ingestion announces. Both are sent on commit, so receivers only ever see stored state.

- `block_accepted(sender=Chain, chain_id, heights, block_hashes)`: blocks are stored and indexed.
- `block_rejected(sender=RejectedSubmission, rejection, consensus_failure)`: a submission was refused;
  `rejection` is the stored record. `consensus_failure` is True for a fork whose competing block
  carries a valid quorum.
"""

from django.dispatch import Signal

block_accepted = Signal()
block_rejected = Signal()
