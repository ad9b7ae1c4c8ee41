// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title Forwarder: sends ETH on with low-level calls, producing internal transfers.
/// @notice Devnet fixture for the watcher's trace decoding: ETH that reaches a deposit address
/// from a contract (no top-level value to it) must still be found, and ETH whose sending frame
/// was rolled back must not.
contract Forwarder {
    error ForwardFailed();
    error Reverted();

    /// Sends all of msg.value to `to` in one internal call.
    function forward(address payable to) external payable {
        _send(to, msg.value);
    }

    /// Sends msg.value to `to`, then reverts: the internal transfer never happened.
    function forwardThenRevert(address payable to) external payable {
        _send(to, msg.value);
        revert Reverted();
    }

    /// Splits msg.value in two internal calls: half to `a`, the rest to `b`.
    function forwardBoth(address payable a, address payable b) external payable {
        uint256 half = msg.value / 2;
        _send(a, half);
        _send(b, msg.value - half);
    }

    function _send(address payable to, uint256 value) internal {
        (bool ok, ) = to.call{value: value}("");
        if (!ok) revert ForwardFailed();
    }
}
