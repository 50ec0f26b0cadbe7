"""Two server processes, one Redis: one user's tabs on different instances see one chat."""

from __future__ import annotations

import asyncio

from deploy_support import conversation, create_conversation, register, resumed_text, tab
from instances import Instance
from node_client import NodeClients


async def test_tabs_on_two_instances_both_see_the_whole_stream(
    pair: list[Instance], node: NodeClients
) -> None:
    first, second = pair
    account = await register(first.base_url)
    conversation_id = await create_conversation(first.base_url, account, model="scripted:30:5")
    here = await tab(node, first.base_url, account, conversation_id)
    there = await tab(node, second.base_url, account, conversation_id, transports=["polling"])
    [ack] = await here.emit("send-message", {"content": "hello from instance 1"})
    assert ack == {"success": True, "messageCount": 2, "sequence": 2}
    final = (await here.wait_for("ai-complete")).data
    remote = (await there.wait_for("ai-complete")).data
    assert remote["content"] == final["content"] and remote["messageCount"] == 2
    local_tokens = [e.data for e in here.named("ai-token")]
    remote_tokens = [e.data for e in there.named("ai-token")]
    assert len(local_tokens) == 30
    assert remote_tokens == local_tokens, "the other instance's tab saw every token, in order"
    assert remote_tokens[-1]["partial"] == final["content"]
    added = (await there.wait_for("message-added")).data
    assert added["sequence"] == 1 and added["content"] == "hello from instance 1"
    body = await conversation(second.base_url, account, conversation_id)
    assert [m["content"] for m in body["messages"]] == ["hello from instance 1", final["content"]]


async def test_an_edit_on_instance_2_cancels_the_reply_running_on_instance_1(
    pair: list[Instance], node: NodeClients
) -> None:
    first, second = pair
    account = await register(first.base_url)
    conversation_id = await create_conversation(first.base_url, account, model="scripted:200:20")
    sender = await tab(node, first.base_url, account, conversation_id)
    editor = await tab(node, second.base_url, account, conversation_id)
    send = asyncio.create_task(sender.emit("send-message", {"content": "the original question"}))
    await editor.wait_for("ai-token", lambda d: d["tokenIndex"] >= 5)
    [edit_ack] = await editor.emit(
        "edit-message", {"sequence": 1, "newContent": "the edited question"}
    )
    assert edit_ack["success"] is True, edit_ack
    assert edit_ack["newMessageCount"] == 1 and edit_ack["deletedCount"] == 0
    [send_ack] = await send
    assert send_ack["success"] is False and send_ack["code"] == "CANCELLED", send_ack
    # The regenerated reply runs on instance 2, where the edit was made.
    truncated = await sender.wait_for("conversation-truncated")
    cut = sender.events.index(truncated)
    done = await sender.wait_for("ai-complete", after=cut, timeout=15)
    final = done.data["content"]
    after_cut = [e.data for e in sender.events[cut:] if e.event == "ai-token"]
    assert len(after_cut) == 200 and after_cut[-1]["partial"] == final
    for token in after_cut:
        assert final.startswith(token["partial"]), "a token of the cancelled reply after the cut"
    assert not [e for e in sender.events[: cut] if e.event == "ai-complete"]
    body = await conversation(first.base_url, account, conversation_id)
    assert [m["content"] for m in body["messages"]] == ["the edited question", final]
    assert body["messageCount"] == 2
    assert body["integrity"] == {"valid": True, "lastValidSequence": 2}
    assert [e.data["content"] for e in editor.named("ai-complete")] == [final]


async def test_a_tab_joining_on_instance_2_mid_stream_resumes_without_gap(
    pair: list[Instance], node: NodeClients
) -> None:
    first, second = pair
    account = await register(first.base_url)
    conversation_id = await create_conversation(first.base_url, account, model="scripted:60:15")
    sender = await tab(node, first.base_url, account, conversation_id)
    send = asyncio.create_task(sender.emit("send-message", {"content": "stream it"}))
    await sender.wait_for("ai-token", lambda d: d["tokenIndex"] >= 10)
    late = await tab(node, second.base_url, account, conversation_id)
    deltas = await tab(
        node, second.base_url, account, conversation_id, auth={"partial": False}
    )
    [ack] = await send
    assert ack["success"] is True
    final = (await sender.wait_for("ai-complete")).data["content"]
    for client in (late, deltas):
        await client.wait_for("ai-complete")
        generating = client.named("state")[0].data["generating"]
        assert generating["sequence"] == 2 and generating["tokenIndex"] >= 10
        assert resumed_text(client, 2) == final
    assert all("partial" not in e.data for e in deltas.named("ai-token"))


async def test_stop_on_one_instance_keeps_what_the_other_streamed(
    pair: list[Instance], node: NodeClients
) -> None:
    first, second = pair
    account = await register(first.base_url)
    conversation_id = await create_conversation(first.base_url, account, model="scripted:200:15")
    sender = await tab(node, first.base_url, account, conversation_id)
    stopper = await tab(node, second.base_url, account, conversation_id)
    send = asyncio.create_task(sender.emit("send-message", {"content": "go on"}))
    await stopper.wait_for("ai-token", lambda d: d["tokenIndex"] >= 5)
    [stop_ack] = await stopper.emit("stop-generation")
    assert stop_ack == {"success": True, "stopped": True}
    [ack] = await send
    assert ack["success"] is True and ack["stopped"] is True
    complete = (await stopper.wait_for("ai-complete")).data
    assert complete["stopped"] is True
    body = await conversation(second.base_url, account, conversation_id)
    assert body["messages"][1]["content"] == complete["content"]
    assert body["messages"][1]["stopped"] is True
    assert 5 <= len(sender.named("ai-token")) < 200


async def test_stop_on_instance_2_stops_the_reply_running_on_instance_1(
    pair: list[Instance], node: NodeClients
) -> None:
    first, second = pair
    account = await register(first.base_url)
    conversation_id = await create_conversation(first.base_url, account, model="scripted:300:20")
    sender = await tab(node, first.base_url, account, conversation_id)
    stopper = await tab(node, second.base_url, account, conversation_id)
    send = asyncio.create_task(sender.emit("send-message", {"content": "a long answer please"}))
    await stopper.wait_for("ai-token", lambda d: d["tokenIndex"] >= 5)
    [stop_ack] = await stopper.emit("stop-generation")
    assert stop_ack == {"success": True, "stopped": True}
    [send_ack] = await send
    assert send_ack["success"] is True and send_ack["stopped"] is True, send_ack
    complete = (await stopper.wait_for("ai-complete")).data
    assert complete["stopped"] is True and complete["messageCount"] == 2
    assert len(sender.named("ai-token")) < 300
    body = await conversation(second.base_url, account, conversation_id)
    assert body["messages"][1]["content"] == complete["content"]
    assert body["messages"][1]["stopped"] is True
