"""Chess games from Elo ratings, legal by construction (moves are played on a `chess.Board`).

A game's players get ratings from 800 to 2400, within 250 points of each other. At every move
a player picks, with a probability that grows with the rating, the move a one-ply evaluation
likes best (mate, then material won, then giving check), and otherwise a random legal move;
so stronger players capture, mate and convert more often, as in real rated games. A game ends
in checkmate, a draw by the rules, a resignation when a side is down a rook or more late in the
game, or an agreed draw after 100 moves. The output is PGN, one line per row, as the hub's
chess set stores it, so the `chess` converter reads both.
"""

from __future__ import annotations

import random
from typing import Any

PIECE_VALUES = {1: 1, 2: 3, 3: 3, 4: 5, 5: 9, 6: 0}  # chess.PAWN .. chess.KING
MAX_FULL_MOVES = 100
RESIGN_DEFICIT = 5
RESIGN_AFTER_PLY = 40


def material(board: Any, colour: bool) -> int:
    return sum(PIECE_VALUES[piece.piece_type] for piece in board.piece_map().values() if piece.color == colour)


def skill(elo: int) -> float:
    """Probability of choosing the evaluated best move: 0.15 at 800, 0.9 at 2400."""
    return min(0.9, max(0.15, 0.15 + (elo - 800) * 0.75 / 1600))


def best_move(board: Any, rng: random.Random) -> Any:
    """One ply: mate first, then the largest material swing, then checks; ties broken at random."""
    mover = board.turn
    scored = []
    for move in board.legal_moves:
        board.push(move)
        if board.is_checkmate():
            score = 1000.0
        else:
            score = material(board, mover) - material(board, not mover) + (0.25 if board.is_check() else 0.0)
            if board.is_attacked_by(not mover, move.to_square) and not board.is_attacked_by(mover, move.to_square):
                piece = board.piece_at(move.to_square)
                score -= PIECE_VALUES[piece.piece_type] if piece else 0
        board.pop()
        scored.append((score, rng.random(), move))
    return max(scored, key=lambda item: (item[0], item[1]))[2]


def play_game(rng: random.Random, white_elo: int, black_elo: int) -> tuple[str, str]:
    """(movetext with the result, result) of one game."""
    import chess

    board = chess.Board()
    moves = []
    result = "1/2-1/2"
    while True:
        if board.is_game_over(claim_draw=True):
            result = board.result(claim_draw=True)
            break
        if board.fullmove_number > MAX_FULL_MOVES:
            break
        if len(moves) >= RESIGN_AFTER_PLY:
            deficit = material(board, not board.turn) - material(board, board.turn)
            if deficit >= RESIGN_DEFICIT and rng.random() < 0.3:
                result = "0-1" if board.turn == chess.WHITE else "1-0"
                break
        elo = white_elo if board.turn == chess.WHITE else black_elo
        move = best_move(board, rng) if rng.random() < skill(elo) else rng.choice(list(board.legal_moves))
        moves.append(move)
        board.push(move)
    movetext = chess.Board().variation_san(moves)
    return f"{movetext} {result}", result


def generate_pgn_rows(count: int, seed: int = 0) -> list[dict[str, str]]:
    """`count` games as PGN lines (`{"text": line}` rows): headers, a blank line, the movetext, a blank line."""
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    for number in range(1, count + 1):
        white_elo = rng.randrange(800, 2401, 10)
        black_elo = min(2400, max(800, white_elo + rng.randrange(-250, 251, 10)))
        movetext, result = play_game(rng, white_elo, black_elo)
        headers = [
            '[Event "Generated rated game"]',
            '[Site "implicit-if"]',
            f'[Round "{number}"]',
            f'[White "player{rng.randrange(1000, 10000)}"]',
            f'[Black "player{rng.randrange(1000, 10000)}"]',
            f'[Result "{result}"]',
            f'[WhiteElo "{white_elo}"]',
            f'[BlackElo "{black_elo}"]',
        ]
        rows.extend({"text": line} for line in [*headers, "", movetext, ""])
    return rows
