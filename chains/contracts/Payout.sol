// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

interface ITransfer {
    function transfer(address to, uint256 amount) external returns (bool);
}

/// @title Payout: pays several recipients of one token in one transaction (a batch payout).
/// @notice Devnet fixture for a transaction mined again at another place after a reorg: each
/// payment emits one Transfer log, and `reversed` (set by a transaction placed before the payout
/// in the new branch, itself emitting a log that shifts the block's log indexes) makes the very
/// same signed payout emit its logs in the opposite order.
contract Payout {
    bool public reversed;

    event Order(bool reversed);

    error PaymentFailed();
    error LengthMismatch();

    function setReversed(bool value) external {
        reversed = value;
        emit Order(value);
    }

    /// Pays amounts[i] of `token` (held by this contract) to to[i], in order or reversed.
    function pay(address token, address[] calldata to, uint256[] calldata amounts) external {
        if (to.length != amounts.length) revert LengthMismatch();
        uint256 n = to.length;
        for (uint256 k = 0; k < n; k++) {
            uint256 i = reversed ? n - 1 - k : k;
            if (!ITransfer(token).transfer(to[i], amounts[i])) revert PaymentFailed();
        }
    }
}
