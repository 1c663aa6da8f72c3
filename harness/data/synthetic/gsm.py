"""GSM-style word problems with worked solutions, generated with the answer computed.

Each template draws numbers that keep every intermediate result a whole number, writes the
question, and writes the solution the way GSM8K does: one short sentence per step with the
calculation in calculator marks (`3 * 12 = <<3*12=36>>36`), then `#### N`. The answer is the
value the steps computed, never typed. Templates avoid the evaluation set's own problems
(speed from distance and time, percent discounts, "n times as many, together", scaling a
recipe, unit conversions, compound interest, dice).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

NAMES = (
    "Amara",
    "Ben",
    "Carlos",
    "Dalia",
    "Emeka",
    "Fiona",
    "Gustavo",
    "Hana",
    "Ivan",
    "Jada",
    "Kenji",
    "Lucia",
    "Mateo",
    "Nadia",
    "Owen",
    "Priya",
    "Quinn",
    "Rosa",
    "Samir",
    "Tessa",
    "Umar",
    "Vera",
    "Wen",
    "Ximena",
    "Yusuf",
    "Zoe",
    "Aiko",
    "Bruno",
    "Chloe",
    "Dmitri",
    "Elif",
    "Farah",
    "Goran",
    "Ines",
    "Jonas",
    "Keala",
)
SHE = {
    "Amara",
    "Dalia",
    "Fiona",
    "Hana",
    "Jada",
    "Lucia",
    "Nadia",
    "Priya",
    "Rosa",
    "Tessa",
    "Vera",
    "Wen",
    "Ximena",
    "Zoe",
    "Aiko",
    "Chloe",
    "Elif",
    "Farah",
    "Ines",
    "Keala",
}


def pronoun(name: str) -> str:
    return "she" if name in SHE else "he"


def possessive(name: str) -> str:
    return "her" if name in SHE else "his"


class Calc:
    """Records the steps of a solution; each operation returns its exact integer result."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def op(self, a: int, sign: str, b: int) -> int:
        if sign == "+":
            value = a + b
        elif sign == "-":
            value = a - b
        elif sign == "*":
            value = a * b
        elif sign == "/":
            if b == 0 or a % b:
                raise ValueError(f"{a} / {b} is not a whole number")
            value = a // b
        else:
            raise ValueError(sign)
        return value

    def mark(self, a: int, sign: str, b: int) -> tuple[str, int]:
        value = self.op(a, sign, b)
        return f"{a} {sign} {b} = <<{a}{sign}{b}={value}>>{value}", value

    def say(self, template: str, a: int, sign: str, b: int) -> int:
        """Append one step; `template` holds `{}` where the marked calculation goes."""
        text, value = self.mark(a, sign, b)
        self.lines.append(template.format(text))
        return value

    def total(self, template: str, terms: list[int]) -> int:
        value = sum(terms)
        expression = " + ".join(map(str, terms))
        self.lines.append(template.format(f"{expression} = <<{'+'.join(map(str, terms))}={value}>>{value}"))
        return value

    def solution(self, answer: int) -> str:
        return "\n".join([*self.lines, f"#### {answer}"])


@dataclass(frozen=True)
class Problem:
    template: str
    question: str
    answer: str  # the worked solution ending in "#### N"
    value: int


Template = Callable[[random.Random, Calc], tuple[str, int]]
TEMPLATES: dict[str, Template] = {}


def template(function: Template) -> Template:
    TEMPLATES[function.__name__] = function
    return function


def _two_names(rng: random.Random) -> tuple[str, str]:
    first, second = rng.sample(NAMES, 2)
    return first, second


@template
def bake_sale(rng: random.Random, c: Calc) -> tuple[str, int]:
    name, trays, per_tray, price = rng.choice(NAMES), rng.randint(2, 6), rng.choice([6, 8, 10, 12]), rng.randint(2, 5)
    unsold = rng.randint(1, trays * per_tray // 3)
    q = (
        f"{name} bakes {trays} trays of muffins with {per_tray} muffins on each tray. {pronoun(name).capitalize()} sells all but "
        f"{unsold} of them at ${price} each. How much money does {name} make?"
    )
    made = c.say(f"{name} bakes {{}} muffins.", trays, "*", per_tray)
    sold = c.say(f"{pronoun(name).capitalize()} sells {{}} muffins.", made, "-", unsold)
    money = c.say("That brings in ${}.", sold, "*", price)
    return q, money


@template
def savings_weeks(rng: random.Random, c: Calc) -> tuple[str, int]:
    name, item = rng.choice(NAMES), rng.choice(["bicycle", "guitar", "telescope", "skateboard", "tablet", "tent"])
    weekly, weeks, have = rng.choice([5, 8, 10, 12, 15, 20]), rng.randint(4, 15), rng.randint(10, 60)
    price = have + weekly * weeks
    q = (
        f"{name} wants a {item} that costs ${price}. {pronoun(name).capitalize()} already has ${have} and saves ${weekly} "
        f"every week. How many weeks will it take {name} to have enough money?"
    )
    missing = c.say(f"{name} still needs {{}} dollars.", price, "-", have)
    answer = c.say("Saving each week, that takes {} weeks.", missing, "/", weekly)
    return q, answer


@template
def library_books(rng: random.Random, c: Calc) -> tuple[str, int]:
    shelves, per_shelf = rng.randint(4, 12), rng.choice([20, 25, 30, 40])
    lent, returned = rng.randint(10, 40), rng.randint(1, 9)
    q = (
        f"A school library has {shelves} shelves with {per_shelf} books on each shelf. On Monday, {lent} books are lent "
        f"out, and on Tuesday {returned} of them are returned. How many books are on the shelves after Tuesday?"
    )
    books = c.say("The library has {} books.", shelves, "*", per_shelf)
    after_monday = c.say("After Monday there are {} books on the shelves.", books, "-", lent)
    answer = c.say("After Tuesday there are {} books.", after_monday, "+", returned)
    return q, answer


@template
def garden_rows(rng: random.Random, c: Calc) -> tuple[str, int]:
    name, rows, per_row = rng.choice(NAMES), rng.randint(3, 9), rng.randint(4, 12)
    tomatoes, per_plant = rng.randint(1, rows - 1), rng.randint(3, 8)
    q = (
        f"{name} plants {rows} rows of vegetables with {per_row} plants in each row. {tomatoes} of the rows are tomato "
        f"plants, and each tomato plant gives {per_plant} tomatoes. How many tomatoes does {name} harvest?"
    )
    plants = c.say("There are {} tomato plants.", tomatoes, "*", per_row)
    answer = c.say(f"{name} harvests {{}} tomatoes.", plants, "*", per_plant)
    return q, answer


@template
def shared_pizza(rng: random.Random, c: Calc) -> tuple[str, int]:
    pizzas, slices, people = rng.randint(2, 6), rng.choice([6, 8, 10, 12]), rng.choice([3, 4, 5, 6])
    while (pizzas * slices) % people:
        pizzas += 1
    q = (
        f"A group of {people} friends orders {pizzas} pizzas. Each pizza is cut into {slices} slices. If they share the "
        f"slices equally, how many slices does each friend get?"
    )
    total = c.say("There are {} slices.", pizzas, "*", slices)
    answer = c.say("Each friend gets {} slices.", total, "/", people)
    return q, answer


@template
def bus_passengers(rng: random.Random, c: Calc) -> tuple[str, int]:
    start = rng.randint(10, 30)
    off1, on1 = rng.randint(1, start - 1), rng.randint(2, 15)
    mid = start - off1 + on1
    off2, on2 = rng.randint(1, mid - 1), rng.randint(0, 12)
    q = (
        f"A bus leaves the depot with {start} passengers. At the first stop {off1} people get off and {on1} get on. At "
        f"the second stop {off2} people get off and {on2} get on. How many passengers are on the bus now?"
    )
    a = c.say("At the first stop, {} passengers stay on.", start, "-", off1)
    b = c.say("After the new riders board, there are {} passengers.", a, "+", on1)
    d = c.say("At the second stop, {} passengers stay on.", b, "-", off2)
    answer = c.say("After the new riders board, the bus carries {} passengers.", d, "+", on2)
    return q, answer


@template
def fence_posts(rng: random.Random, c: Calc) -> tuple[str, int]:
    name, gap, sections = rng.choice(NAMES), rng.choice([2, 3, 4, 5]), rng.randint(5, 30)
    length = gap * sections
    q = (
        f"{name} is building a straight fence {length} metres long, with a post every {gap} metres, including a post at "
        f"each end. How many posts does {pronoun(name)} need?"
    )
    gaps = c.say("The fence has {} gaps between posts.", length, "/", gap)
    answer = c.say("With a post at both ends, that needs {} posts.", gaps, "+", 1)
    return q, answer


@template
def ticket_mix(rng: random.Random, c: Calc) -> tuple[str, int]:
    adults, children = rng.randint(2, 9), rng.randint(2, 12)
    adult_price, child_price = rng.randint(9, 20), rng.randint(3, 8)
    q = (
        f"At a museum, adult tickets cost ${adult_price} and children's tickets cost ${child_price}. A school trip buys "
        f"{adults} adult tickets and {children} children's tickets. What is the total cost?"
    )
    a = c.say("The adult tickets cost ${}.", adults, "*", adult_price)
    b = c.say("The children's tickets cost ${}.", children, "*", child_price)
    answer = c.say("Together they cost ${}.", a, "+", b)
    return q, answer


@template
def reading_pages(rng: random.Random, c: Calc) -> tuple[str, int]:
    name, per_day, days = rng.choice(NAMES), rng.randint(8, 30), rng.randint(3, 9)
    left = rng.randint(10, 80)
    q = (
        f"{name} reads {per_day} pages of a book every day for {days} days and then has {left} pages left. How many pages "
        f"does the book have?"
    )
    read = c.say(f"{name} reads {{}} pages.", per_day, "*", days)
    answer = c.say("The book has {} pages.", read, "+", left)
    return q, answer


@template
def egg_cartons(rng: random.Random, c: Calc) -> tuple[str, int]:
    hens, eggs_per_week, weeks = rng.randint(4, 15), rng.randint(4, 6), rng.randint(1, 4)
    total = hens * eggs_per_week * weeks
    carton = 12 if total % 12 == 0 else 6 if total % 6 == 0 else None
    while carton is None:
        hens += 1
        total = hens * eggs_per_week * weeks
        carton = 12 if total % 12 == 0 else 6 if total % 6 == 0 else None
    q = (
        f"A farmer has {hens} hens. Each hen lays {eggs_per_week} eggs a week. The farmer packs the eggs into cartons of "
        f"{carton}. How many full cartons does the farmer fill in {weeks} week{'s' if weeks > 1 else ''}?"
    )
    per_week = c.say("The hens lay {} eggs a week.", hens, "*", eggs_per_week)
    eggs = c.say(f"In {weeks} week{'s' if weeks > 1 else ''} that is {{}} eggs.", per_week, "*", weeks)
    answer = c.say("That fills {} cartons.", eggs, "/", carton)
    return q, answer


@template
def marbles_trade(rng: random.Random, c: Calc) -> tuple[str, int]:
    first, second = _two_names(rng)
    a, b = rng.randint(20, 60), rng.randint(10, 40)
    gives, gets = rng.randint(1, a // 2), rng.randint(1, b // 2)
    q = (
        f"{first} has {a} marbles and {second} has {b}. {first} gives {second} {gives} marbles, and {second} gives {first} "
        f"{gets} marbles back. How many marbles does {first} have now?"
    )
    left = c.say(f"After giving some away, {first} has {{}} marbles.", a, "-", gives)
    answer = c.say(f"After getting some back, {first} has {{}} marbles.", left, "+", gets)
    return q, answer


@template
def paint_walls(rng: random.Random, c: Calc) -> tuple[str, int]:
    walls, width, height = rng.randint(2, 4), rng.randint(3, 6), rng.choice([2, 3])
    coverage = rng.choice([2, 3, 4, 6])
    area = walls * width * height
    while area % coverage:
        width += 1
        area = walls * width * height
    q = (
        f"A room has {walls} walls to paint, each {width} metres wide and {height} metres high. One litre of paint covers "
        f"{coverage} square metres. How many litres of paint are needed?"
    )
    one = c.say("Each wall is {} square metres.", width, "*", height)
    total = c.say("All the walls together are {} square metres.", one, "*", walls)
    answer = c.say("That needs {} litres of paint.", total, "/", coverage)
    return q, answer


@template
def phone_plan(rng: random.Random, c: Calc) -> tuple[str, int]:
    name, fee, months, extra_gb, per_gb = (
        rng.choice(NAMES),
        rng.randint(10, 30),
        rng.randint(3, 12),
        rng.randint(1, 8),
        rng.randint(2, 6),
    )
    q = (
        f"{name}'s phone plan costs ${fee} a month. Over {months} months {pronoun(name)} also buys {extra_gb} extra gigabytes "
        f"of data at ${per_gb} per gigabyte. How much does {name} pay in total?"
    )
    base = c.say("The monthly fees come to ${}.", fee, "*", months)
    extra = c.say("The extra data costs ${}.", extra_gb, "*", per_gb)
    answer = c.say("In total that is ${}.", base, "+", extra)
    return q, answer


@template
def classroom_groups(rng: random.Random, c: Calc) -> tuple[str, int]:
    classes, per_class, group = rng.randint(2, 5), rng.randint(18, 30), rng.choice([3, 4, 5, 6])
    pupils = classes * per_class
    while pupils % group:
        per_class += 1
        pupils = classes * per_class
    q = (
        f"A year group has {classes} classes of {per_class} pupils. For a science fair they work in teams of {group}. "
        f"How many teams are there?"
    )
    total = c.say("There are {} pupils.", classes, "*", per_class)
    answer = c.say("They make {} teams.", total, "/", group)
    return q, answer


@template
def water_tank(rng: random.Random, c: Calc) -> tuple[str, int]:
    rate, minutes, leak = rng.randint(8, 25), rng.randint(5, 20), rng.randint(1, 5)
    q = (
        f"A tank is filled by a hose that adds {rate} litres a minute, while a small leak loses {leak} litres a minute. "
        f"The tank starts empty. How many litres are in it after {minutes} minutes?"
    )
    net = c.say("Each minute the tank gains {} litres.", rate, "-", leak)
    answer = c.say(f"After {minutes} minutes it holds {{}} litres.", net, "*", minutes)
    return q, answer


@template
def age_puzzle(rng: random.Random, c: Calc) -> tuple[str, int]:
    first, second = _two_names(rng)
    younger, gap, years = rng.randint(5, 20), rng.randint(2, 12), rng.randint(2, 10)
    q = (
        f"{first} is {gap} years older than {second}. {second} is {younger} years old. How old will {first} be in "
        f"{years} years?"
    )
    now = c.say(f"{first} is {{}} years old now.", younger, "+", gap)
    answer = c.say(f"In {years} years, {first} will be {{}}.", now, "+", years)
    return q, answer


@template
def weekly_run(rng: random.Random, c: Calc) -> tuple[str, int]:
    name, short_km, short_days, long_km = rng.choice(NAMES), rng.randint(3, 8), rng.randint(2, 5), rng.randint(10, 21)
    weeks = rng.randint(2, 6)
    q = (
        f"{name} runs {short_km} km on {short_days} days each week and one long run of {long_km} km on Sunday. How many "
        f"kilometres does {pronoun(name)} run in {weeks} weeks?"
    )
    short = c.say("The short runs add up to {} km a week.", short_km, "*", short_days)
    week = c.say("With the long run that is {} km a week.", short, "+", long_km)
    answer = c.say(f"In {weeks} weeks, {name} runs {{}} km.", week, "*", weeks)
    return q, answer


@template
def stamps_album(rng: random.Random, c: Calc) -> tuple[str, int]:
    name, pages, per_page = rng.choice(NAMES), rng.randint(10, 40), rng.choice([6, 8, 9, 12])
    have = rng.randint(20, pages * per_page - 1)
    q = (
        f"{name}'s stamp album has {pages} pages, and each page holds {per_page} stamps. {pronoun(name).capitalize()} "
        f"has {have} stamps. How many more stamps can fit in the album?"
    )
    room = c.say("The album holds {} stamps.", pages, "*", per_page)
    answer = c.say("There is room for {} more.", room, "-", have)
    return q, answer


@template
def cafe_orders(rng: random.Random, c: Calc) -> tuple[str, int]:
    name = rng.choice(NAMES)
    coffees, coffee_price, cakes, cake_price = (
        rng.randint(2, 6),
        rng.randint(2, 4),
        rng.randint(1, 4),
        rng.randint(3, 6),
    )
    cost = coffees * coffee_price + cakes * cake_price
    paid = next(note for note in (20, 50, 100) if note >= cost)
    q = (
        f"At a cafe, a coffee costs ${coffee_price} and a slice of cake costs ${cake_price}. {name} orders {coffees} coffees "
        f"and {cakes} slices of cake and pays with a ${paid} note. How much change does {pronoun(name)} get?"
    )
    a = c.say("The coffees cost ${}.", coffees, "*", coffee_price)
    b = c.say("The cake costs ${}.", cakes, "*", cake_price)
    bill = c.say("The bill is ${}.", a, "+", b)
    answer = c.say(f"{possessive(name).capitalize()} change is ${{}}.", paid, "-", bill)
    return q, answer


@template
def factory_shifts(rng: random.Random, c: Calc) -> tuple[str, int]:
    per_hour, hours, shifts, days = rng.randint(12, 60), rng.choice([6, 8]), rng.randint(1, 3), rng.randint(2, 6)
    q = (
        f"A machine makes {per_hour} bottles an hour. The factory runs it for {shifts} shift{'s' if shifts > 1 else ''} "
        f"of {hours} hours each day. How many bottles does it make in {days} days?"
    )
    per_shift = c.say("One shift makes {} bottles.", per_hour, "*", hours)
    per_day = c.say("One day makes {} bottles.", per_shift, "*", shifts)
    answer = c.say(f"In {days} days it makes {{}} bottles.", per_day, "*", days)
    return q, answer


@template
def fraction_spent(rng: random.Random, c: Calc) -> tuple[str, int]:
    name, denominator = rng.choice(NAMES), rng.choice([2, 3, 4, 5])
    money = denominator * rng.randint(6, 30)
    snack = rng.randint(1, money // denominator // 2 or 1)
    q = (
        f"{name} has ${money}. {pronoun(name).capitalize()} spends 1/{denominator} of it on a book and then ${snack} on a "
        f"snack. How much money does {name} have left?"
    )
    book = c.say("The book costs ${}.", money, "/", denominator)
    after_book = c.say("After the book, " + name + " has ${}.", money, "-", book)
    answer = c.say("After the snack, " + pronoun(name) + " has ${} left.", after_book, "-", snack)
    return q, answer


@template
def apple_boxes(rng: random.Random, c: Calc) -> tuple[str, int]:
    boxes, per_box, bad = rng.randint(3, 10), rng.choice([24, 30, 36, 40, 48]), rng.randint(2, 15)
    bag = rng.choice([4, 5, 6])
    good = boxes * per_box - bad
    while good % bag:
        bad += 1
        good = boxes * per_box - bad
    q = (
        f"A grocer receives {boxes} boxes of apples with {per_box} apples in each box. {bad} apples are bruised and "
        f"thrown away. The rest are packed in bags of {bag}. How many bags does the grocer fill?"
    )
    total = c.say("There are {} apples.", boxes, "*", per_box)
    kept = c.say("{} apples are good.", total, "-", bad)
    answer = c.say("They fill {} bags.", kept, "/", bag)
    return q, answer


@template
def train_cars(rng: random.Random, c: Calc) -> tuple[str, int]:
    cars, seats, full_cars = rng.randint(5, 12), rng.choice([40, 50, 60, 64, 72]), 0
    full_cars = rng.randint(1, cars - 1)
    empty_seats = rng.randint(1, seats - 1)
    q = (
        f"A train has {cars} cars with {seats} seats each. {full_cars} of the cars are full, and every other car has "
        f"{empty_seats} empty seats. How many passengers are seated on the train?"
    )
    full = c.say("The full cars seat {} passengers.", full_cars, "*", seats)
    others = c.say("There are {} other cars.", cars, "-", full_cars)
    per_other = c.say("Each of those seats {} passengers.", seats, "-", empty_seats)
    rest = c.say("Together they seat {} passengers.", others, "*", per_other)
    answer = c.say("The train has {} passengers seated.", full, "+", rest)
    return q, answer


@template
def charity_walk(rng: random.Random, c: Calc) -> tuple[str, int]:
    name, km, per_km, sponsors, bonus = (
        rng.choice(NAMES),
        rng.randint(5, 25),
        rng.randint(1, 4),
        rng.randint(2, 8),
        rng.choice([10, 20, 25]),
    )
    q = (
        f"{name} walks {km} km for charity. Each of {possessive(name)} {sponsors} sponsors gives ${per_km} per kilometre, "
        f"and {possessive(name)} aunt adds a ${bonus} bonus. How much money does {name} raise?"
    )
    one = c.say("Each sponsor gives ${}.", km, "*", per_km)
    sponsored = c.say("All the sponsors give ${}.", one, "*", sponsors)
    answer = c.say("With the bonus, " + name + " raises ${}.", sponsored, "+", bonus)
    return q, answer


@template
def sleep_hours(rng: random.Random, c: Calc) -> tuple[str, int]:
    name, weekday, weekend = rng.choice(NAMES), rng.randint(6, 8), rng.randint(8, 10)
    q = (
        f"{name} sleeps {weekday} hours each night from Monday to Friday and {weekend} hours each night on Saturday and "
        f"Sunday. How many hours does {pronoun(name)} sleep in a week?"
    )
    a = c.say("On weekdays " + pronoun(name) + " sleeps {} hours.", weekday, "*", 5)
    b = c.say("At the weekend " + pronoun(name) + " sleeps {} hours.", weekend, "*", 2)
    answer = c.say("In a week that is {} hours.", a, "+", b)
    return q, answer


@template
def concert_rows(rng: random.Random, c: Calc) -> tuple[str, int]:
    rows, seats, reserved_rows, price = rng.randint(10, 30), rng.randint(12, 30), rng.randint(1, 4), rng.randint(8, 25)
    q = (
        f"A concert hall has {rows} rows of {seats} seats. The first {reserved_rows} rows are reserved for guests, and "
        f"every other seat is sold at ${price}. If the concert sells out, how much money do the ticket sales bring in?"
    )
    sold_rows = c.say("{} rows are sold.", rows, "-", reserved_rows)
    seats_sold = c.say("That is {} seats.", sold_rows, "*", seats)
    answer = c.say("The sales bring in ${}.", seats_sold, "*", price)
    return q, answer


@template
def cookie_jar(rng: random.Random, c: Calc) -> tuple[str, int]:
    first, second = _two_names(rng)
    jar = rng.randint(30, 90)
    ate_first, ate_second = rng.randint(2, 10), rng.randint(2, 10)
    per_day = rng.randint(1, 3)
    days = rng.randint(2, 5)
    q = (
        f"A jar holds {jar} cookies. {first} eats {ate_first} and {second} eats {ate_second}. Then the family eats "
        f"{per_day} cookies a day for {days} days. How many cookies are left?"
    )
    eaten = c.say("The two friends eat {} cookies.", ate_first, "+", ate_second)
    left = c.say("That leaves {} cookies.", jar, "-", eaten)
    family = c.say("The family eats {} cookies.", per_day, "*", days)
    answer = c.say("There are {} cookies left.", left, "-", family)
    return q, answer


@template
def hourly_wage(rng: random.Random, c: Calc) -> tuple[str, int]:
    name, wage, hours, overtime, overtime_rate = (
        rng.choice(NAMES),
        rng.randint(11, 25),
        rng.randint(20, 40),
        rng.randint(1, 8),
        0,
    )
    overtime_rate = wage + rng.randint(3, 10)
    q = (
        f"{name} earns ${wage} an hour for regular work and ${overtime_rate} an hour for overtime. This week "
        f"{pronoun(name)} worked {hours} regular hours and {overtime} hours of overtime. How much did {name} earn?"
    )
    regular = c.say("Regular work pays ${}.", wage, "*", hours)
    extra = c.say("Overtime pays ${}.", overtime, "*", overtime_rate)
    answer = c.say(name + " earned ${}.", regular, "+", extra)
    return q, answer


@template
def aquarium_fish(rng: random.Random, c: Calc) -> tuple[str, int]:
    tanks, fish, new_tank = rng.randint(2, 6), rng.randint(5, 15), rng.randint(4, 20)
    died = rng.randint(1, 4)
    q = (
        f"A pet shop has {tanks} tanks with {fish} fish in each. A new delivery fills another tank with {new_tank} fish, "
        f"and {died} fish are sold. How many fish does the shop have now?"
    )
    first = c.say("The first tanks hold {} fish.", tanks, "*", fish)
    more = c.say("After the delivery there are {} fish.", first, "+", new_tank)
    answer = c.say("After the sale there are {} fish.", more, "-", died)
    return q, answer


@template
def tiles_floor(rng: random.Random, c: Calc) -> tuple[str, int]:
    length, width, per_box = rng.randint(3, 9), rng.randint(2, 7), rng.choice([2, 3, 4, 5, 6])
    tiles_per_m2 = rng.choice([4, 9, 16])
    total = length * width * tiles_per_m2
    while total % per_box:
        length += 1
        total = length * width * tiles_per_m2
    q = (
        f"A kitchen floor is {length} metres by {width} metres. It takes {tiles_per_m2} tiles to cover one square metre, "
        f"and tiles come in boxes of {per_box}. How many boxes are needed?"
    )
    area = c.say("The floor is {} square metres.", length, "*", width)
    tiles = c.say("It needs {} tiles.", area, "*", tiles_per_m2)
    answer = c.say("That is {} boxes.", tiles, "/", per_box)
    return q, answer


@template
def points_game(rng: random.Random, c: Calc) -> tuple[str, int]:
    name, goals, goal_points, bonus, penalties = (
        rng.choice(NAMES),
        rng.randint(2, 12),
        rng.choice([2, 3, 5]),
        rng.randint(0, 15),
        rng.randint(0, 4),
    )
    per_penalty = rng.choice([1, 2, 3])
    q = (
        f"In a board game, each tower {name} builds scores {goal_points} points. {name} builds {goals} towers, earns a "
        f"{bonus}-point bonus, and loses {per_penalty} point{'s' if per_penalty > 1 else ''} for each of {penalties} "
        f"penalties. What is {possessive(name)} final score?"
    )
    towers = c.say("The towers score {} points.", goals, "*", goal_points)
    with_bonus = c.say("With the bonus that is {} points.", towers, "+", bonus)
    lost = c.say("The penalties cost {} points.", penalties, "*", per_penalty)
    answer = c.say("The final score is {} points.", with_bonus, "-", lost)
    return q, answer


def generate_problems(count: int, seed: int = 0) -> list[Problem]:
    """`count` problems, templates in turn (so every template appears), numbers from a seeded generator."""
    rng = random.Random(seed)
    names = sorted(TEMPLATES)
    problems: list[Problem] = []
    seen: set[str] = set()
    attempts = 0
    while len(problems) < count:
        attempts += 1
        if attempts > count * 20:
            raise RuntimeError("could not draw enough distinct problems; add templates or lower the count")
        name = names[len(problems) % len(names)]
        calc = Calc()
        question, value = TEMPLATES[name](rng, calc)
        if question in seen or value < 0:
            continue
        seen.add(question)
        problems.append(Problem(name, question, calc.solution(value), value))
    return problems
