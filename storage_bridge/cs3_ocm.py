"""OCM (Open Cloud Mesh) over a CS3 gateway: invites, federated contacts, federated shares.

Everything runs as the token's user through a ``CS3Storage`` connection to *our* site's gateway;
the gateway talks to the other site (its ocmd HTTP endpoints) itself.

The flow, as reva v2.27.7 implements it:

1. **Invite.** A user at site A generates an invite token (``generate_invite``) and hands it to a
   colleague at site B out of band (mail, chat). B accepts it at B (``accept_invite``): B's gateway
   forwards it to A's ``/ocm/invite-accepted``. From then on each lists the other as a *contact*
   (``contacts``), a federated user id ``{idp: <other site's domain>, opaque_id: ...}``.
2. **Share.** A shares a file or folder with a contact (``create_share``); A's OCM share provider
   POSTs it to B's ``/ocm/shares``, B's OCM core stores it as a *received* share, pending.
3. **Accept and open.** B accepts it (``set_received_state``). B reaches the content either through
   its own gateway at ``/ocm/<received share id>`` (the ``ocmreceived`` storage provider, which
   forwards to A) or directly at the share's WebDAV URI with the shared secret as bearer token.
4. **Revoke.** A removes the share (``remove_share``); A's ocdav then refuses the secret, so B's
   ``/ocm/...`` path stops working at once, whatever B's list still says.

Reva facts (v2.27.7): the role of an OCM share is its WebDAV permission set (the same sets as local
shares, ``cs3.shares.role_permissions``); the ocmshares auth manager maps upload permission to
"editor", download to "viewer". ``GenerateInviteToken`` ignores the description for the token's
lifetime (``token_expiration`` in the invite manager config, default 24 h).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import grpc
import grpc.aio
from cs3.gateway.v1beta1 import gateway_api_pb2 as gw_pb
from cs3.gateway.v1beta1 import gateway_api_pb2_grpc as gw_grpc
from cs3.identity.user.v1beta1 import resources_pb2 as user_res
from cs3.ocm.invite.v1beta1 import invite_api_pb2 as inv_pb
from cs3.ocm.invite.v1beta1 import resources_pb2 as inv_res
from cs3.ocm.provider.v1beta1 import provider_api_pb2 as prov_pb
from cs3.sharing.ocm.v1beta1 import ocm_api_pb2 as ocm_pb
from cs3.sharing.ocm.v1beta1 import resources_pb2 as ocm_res
from cs3.storage.provider.v1beta1 import resources_pb2 as sp_res
from google.protobuf import field_mask_pb2

from storage_bridge.cs3.errors import CODE_OK, rpc_error
from storage_bridge.cs3.shares import Role, role_of, role_permissions
from storage_bridge.errors import InvalidArgument, NotFound, StorageError, Unauthenticated
from storage_bridge.types import Permissions, Ref, ResourceId

if TYPE_CHECKING:
    from storage_bridge.cs3 import CS3Storage

OCMState = Literal["pending", "accepted", "rejected", "invalid"]
_STATES: dict[int, OCMState] = {
    ocm_res.SHARE_STATE_PENDING: "pending",
    ocm_res.SHARE_STATE_ACCEPTED: "accepted",
    ocm_res.SHARE_STATE_REJECTED: "rejected",
}
_STATE_CODES = {"accepted": ocm_res.SHARE_STATE_ACCEPTED, "rejected": ocm_res.SHARE_STATE_REJECTED}
OCM_MOUNT = "/ocm"  # where the ocmreceived storage provider is mounted (devkit/revad/ocm)


@dataclass(frozen=True, slots=True)
class Invite:
    token: str
    expiration: float  # unix seconds
    description: str


@dataclass(frozen=True, slots=True)
class Contact:
    """A user at another site who accepted an invite of ours, or whose invite we accepted."""

    id: str  # opaque id of the federated user id (what shares are granted to)
    site: str  # the other site's OCM domain (the federated user id's idp)
    display_name: str
    mail: str

    @property
    def address(self) -> str:
        """``id@site``: one string that names the contact across the mesh."""
        return f"{self.id}@{self.site}"


@dataclass(frozen=True, slots=True)
class OCMShare:
    """A share we sent to a user at another site."""

    id: str
    resource_id: ResourceId
    name: str
    grantee: str  # the contact's federated opaque id
    grantee_site: str
    role: Role
    ctime: float


@dataclass(frozen=True, slots=True)
class ReceivedOCMShare:
    """A share a user at another site sent us."""

    id: str  # our (receiving side's) id: the one /ocm/<id> and accept use
    remote_id: str
    name: str
    owner: str  # owner's opaque id at their site
    owner_site: str  # the owner's OCM domain
    role: Role
    state: OCMState
    is_dir: bool
    webdav_uri: str
    ctime: float
    # The share's WebDAV secret: what the owner site's ocmshares auth turns into a share-scoped
    # token (``share_token``). Never sent to browsers (jupyter_cs3.ocm_rest leaves it out).
    secret: str = field(default="", repr=False)

    @property
    def path(self) -> str:
        """The received share's root through our own gateway (ocmreceived provider)."""
        return f"{OCM_MOUNT}/{self.id}"


def _ts(t: Any) -> float:
    return float(t.seconds) + float(t.nanos) / 1e9


def _role_from(ps: Any) -> Role:
    return role_of(Permissions(read=ps.initiate_file_download, write=ps.initiate_file_upload))


def _contact(u: Any) -> Contact:
    return Contact(id=u.id.opaque_id, site=u.id.idp, display_name=u.display_name, mail=u.mail)


def _federated_id(contact: Contact) -> Any:
    return user_res.UserId(
        opaque_id=contact.id, idp=contact.site, type=user_res.USER_TYPE_FEDERATED
    )


def sent_from_cs3(s: Any) -> OCMShare:
    perms = next(
        (m.webdav_options.permissions for m in s.access_methods if m.HasField("webdav_options")),
        None,
    )
    uid = s.grantee.user_id
    return OCMShare(
        id=s.id.opaque_id,
        resource_id=ResourceId(
            storage_id=s.resource_id.storage_id,
            space_id=s.resource_id.space_id,
            opaque_id=s.resource_id.opaque_id,
        ),
        name=s.name,
        grantee=uid.opaque_id,
        grantee_site=uid.idp,
        role=_role_from(perms) if perms is not None else "viewer",
        ctime=_ts(s.ctime),
    )


def received_from_cs3(r: Any) -> ReceivedOCMShare:
    dav = next((p.webdav_options for p in r.protocols if p.HasField("webdav_options")), None)
    return ReceivedOCMShare(
        id=r.id.opaque_id,
        remote_id=r.remote_share_id,
        name=r.name,
        owner=r.owner.opaque_id,
        owner_site=r.owner.idp,
        role=_role_from(dav.permissions.permissions) if dav is not None else "viewer",
        state=_STATES.get(r.state, "invalid"),
        is_dir=r.resource_type == sp_res.RESOURCE_TYPE_CONTAINER,
        webdav_uri=dav.uri if dav is not None else "",
        ctime=_ts(r.ctime),
        secret=dav.shared_secret if dav is not None else "",
    )


# ---- invites and contacts ----


async def generate_invite(storage: CS3Storage, token: str, description: str = "") -> Invite:
    """A new invite token of the token's user, to hand to a colleague at another site."""
    resp = await storage.call(
        "GenerateInviteToken", inv_pb.GenerateInviteTokenRequest(description=description), token
    )
    t = resp.invite_token
    return Invite(token=t.token, expiration=_ts(t.expiration), description=t.description)


async def provider_info(storage: CS3Storage, token: str, domain: str) -> Any:
    """The mesh's entry for ``domain`` (our provider authorizer's list); ``NotFound`` if none."""
    if not domain:
        raise InvalidArgument("a site domain is needed")
    try:
        resp = await storage.call(
            "GetInfoByDomain", prov_pb.GetInfoByDomainRequest(domain=domain), token, idempotent=True
        )
    except StorageError as exc:
        # reva v2.27.7 answers an unknown domain with CODE_INTERNAL "... not found: <domain>"
        # (gateway ocmproviderauthorizer.go wraps the authorizer's NotFound).
        if f"not found: {domain}" in str(exc):
            raise NotFound(f"{domain} is not a site of this mesh") from exc
        raise
    return resp.provider_info


async def accept_invite(storage: CS3Storage, token: str, invite_token: str, site: str) -> Contact:
    """Accept an invite generated at ``site``: its user and ours become each other's contacts."""
    if not invite_token:
        raise InvalidArgument("an invite token is needed")
    origin = await provider_info(storage, token, site)
    resp = await storage.call(
        "ForwardInvite",
        inv_pb.ForwardInviteRequest(
            invite_token=inv_res.InviteToken(token=invite_token), origin_system_provider=origin
        ),
        token,
    )
    return Contact(
        id=resp.user_id.opaque_id,
        site=resp.user_id.idp,
        display_name=resp.display_name,
        mail=resp.email,
    )


async def contacts(storage: CS3Storage, token: str, query: str = "") -> list[Contact]:
    """The token's user's federated contacts (``query`` filters by name, mail or id)."""
    resp = await storage.call(
        "FindAcceptedUsers", inv_pb.FindAcceptedUsersRequest(filter=query), token, idempotent=True
    )
    return [_contact(u) for u in resp.accepted_users]


async def find_contact(storage: CS3Storage, token: str, who: str) -> Contact:
    """A contact by ``id@site``, id, or exact display name / mail; ``NotFound`` if none."""
    for c in await contacts(storage, token):
        if who in (c.address, c.id, c.display_name, c.mail):
            return c
    raise NotFound(f"no federated contact {who!r}")


async def remove_contact(storage: CS3Storage, token: str, contact: Contact) -> None:
    await storage.call(
        "DeleteAcceptedUser",
        inv_pb.DeleteAcceptedUserRequest(remote_user_id=_federated_id(contact)),
        token,
    )


# ---- shares we send ----


async def create_share(
    storage: CS3Storage, token: str, ref: Ref, contact: Contact, role: Role
) -> OCMShare:
    """Share ``ref`` with a federated ``contact`` as viewer or editor (WebDAV access)."""
    info = await storage.resource_info(token, ref)
    is_dir = info.type == sp_res.RESOURCE_TYPE_CONTAINER
    mesh = await provider_info(storage, token, contact.site)
    req = ocm_pb.CreateOCMShareRequest(
        resource_id=info.id,
        grantee=sp_res.Grantee(type=sp_res.GRANTEE_TYPE_USER, user_id=_federated_id(contact)),
        recipient_mesh_provider=mesh,
        access_methods=[
            ocm_res.AccessMethod(
                webdav_options=ocm_res.WebDAVAccessMethod(
                    permissions=role_permissions(role, is_dir=is_dir)
                )
            )
        ],
    )
    resp = await storage.call("CreateOCMShare", req, token)
    return sent_from_cs3(resp.share)


async def list_shares(storage: CS3Storage, token: str) -> list[OCMShare]:
    """The OCM shares the token's user sent."""
    resp = await storage.call(
        "ListOCMShares", ocm_pb.ListOCMSharesRequest(), token, idempotent=True
    )
    return [sent_from_cs3(s) for s in resp.shares]


def _ref(share_id: str) -> Any:
    return ocm_res.ShareReference(id=ocm_res.ShareId(opaque_id=share_id))


async def remove_share(storage: CS3Storage, token: str, share_id: str) -> None:
    """Revoke: the owner site stops honouring the share's secret at once."""
    await storage.call("RemoveOCMShare", ocm_pb.RemoveOCMShareRequest(ref=_ref(share_id)), token)


# ---- shares we received ----


async def list_received(storage: CS3Storage, token: str) -> list[ReceivedOCMShare]:
    resp = await storage.call(
        "ListReceivedOCMShares", ocm_pb.ListReceivedOCMSharesRequest(), token, idempotent=True
    )
    return [received_from_cs3(r) for r in resp.shares]


async def set_received_state(
    storage: CS3Storage, token: str, share_id: str, state: Literal["accepted", "rejected"]
) -> ReceivedOCMShare:
    """Accept (or decline) a received OCM share."""
    got = await storage.call(
        "GetReceivedOCMShare",
        ocm_pb.GetReceivedOCMShareRequest(ref=_ref(share_id)),
        token,
        idempotent=True,
    )
    share = got.share
    share.state = _STATE_CODES[state]
    await storage.call(
        "UpdateReceivedOCMShare",
        ocm_pb.UpdateReceivedOCMShareRequest(
            share=share, update_mask=field_mask_pb2.FieldMask(paths=["state"])
        ),
        token,
    )
    # reva v2.27.7 answers UpdateReceivedOCMShare with a status only: read it back.
    again = await storage.call(
        "GetReceivedOCMShare",
        ocm_pb.GetReceivedOCMShareRequest(ref=_ref(share_id)),
        token,
        idempotent=True,
    )
    return received_from_cs3(again.share)


# ---- the owner site's side of a federated share ----

OCM_CREDENTIAL_PREFIX = "ocmshare:"


def ocm_credential(share_id: str, secret: str) -> str:
    """What a remote site's server sends the owner site's hub as its bearer token."""
    return f"{OCM_CREDENTIAL_PREFIX}{share_id}:{secret}"


def ocm_public_path(share_id: str) -> str:
    """The owner site's path of a share, stat-ed with its scoped token (reva's OCM namespace):
    the owner's resource itself (same resource id)."""
    return f"/public/{share_id}"


async def share_token(gateway: str, remote_share_id: str, secret: str, timeout: float = 10) -> str:
    """A token of the *owner* site's gateway, scoped to one OCM share, for its remote grantee.

    reva's ``ocmshares`` auth manager checks the secret against the share (GetOCMShareByToken),
    answers as the grantee (the federated user the owner site knows) and scopes the token to
    the shared resource with the share's role. After ``remove_share`` it refuses:
    ``Unauthenticated``. A channel of its own: this call carries no user token.
    """
    req = gw_pb.AuthenticateRequest(
        type="ocmshares", client_id=remote_share_id, client_secret=secret
    )
    async with grpc.aio.insecure_channel(gateway) as channel:
        try:
            resp = await gw_grpc.GatewayAPIStub(channel).Authenticate(req, timeout=timeout)
        except grpc.RpcError as exc:
            raise rpc_error(exc, call="Authenticate") from exc
    if resp.status.code != CODE_OK:
        raise Unauthenticated(f"ocmshares: {resp.status.message or resp.status.code}")
    token: str = resp.token
    return token
