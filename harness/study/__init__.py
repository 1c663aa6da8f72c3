"""The study in miniature: train the reference checkpoints, evaluate them, put them on a board.

`plan.py` names the runs and where their checkpoints live (cached by recipe, data and seed);
`runner.py` trains what is missing and evaluates each checkpoint with the harness.
"""
