"""Drop-in reward hooks for RL frameworks, in-process or against a running `omnireward serve`.

trl.py       RewardFunction: TRL GRPOTrainer(reward_funcs=[...])
verl.py      compute_score: verl custom_reward_function
openrlhf.py  reward_func: OpenRLHF --reward.remote_url /path/to/openrlhf.py
backend.py   a model folder loaded once per process, or a server URL
inputs.py    dataset cells (chat messages, media) -> record parts
"""
