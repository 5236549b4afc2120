"""Language and question heuristics."""

from __future__ import annotations

import pytest

from nlp.rules import detect_lang, is_question


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Где мой заказ? Жду уже неделю", "ru"),
        ("@shop_ru доставка опять опоздала https://t.co/abc", "ru"),
        ("My order is late again", "en"),
        ("@united lost my bag #fail", "en"),
        ("ok", "en"),
        ("Дякую, все чудово, замовлення прийшло вчасно", "other"),
        ("Das ist nicht gut, ich bin sehr enttäuscht und die Lieferung ist spät", "other"),
        ("El pedido no llegó y nadie responde por teléfono", "other"),
        ("这个产品很好", "other"),
        ("12345 !!!", "other"),
        ("", "other"),
        ("Мой iPhone опять не заряжается", "ru"),
    ],
)
def test_detect_lang(text: str, lang: str) -> None:
    assert detect_lang(text) == lang


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Where is my order?", True),
        ("@acme how do I get a refund", True),
        ("Can someone help me with my account", True),
        ("Подскажите, как оформить возврат", True),
        ("Когда привезут заказ", True),
        ("Работаете ли вы в выходные", True),
        ("Как мне сменить тариф", True),
        ("Что с моим заказом", True),
        ("My order is late again.", False),
        ("Will never fly with you again.", False),
        ("What a joke of a company.", False),
        ("How dare you charge me twice.", False),
        ("Как всегда опоздали.", False),
        ("Что за бардак.", False),
        ("Спасибо, всё отлично!", False),
        ("see https://example.com/page?id=3", False),
    ],
)
def test_is_question(text: str, expected: bool) -> None:
    assert is_question(text) is expected
